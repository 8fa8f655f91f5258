#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# registries.sh DIR: inside a test bed, start two real registries (Debian's
# docker-registry) on 127.0.0.1, each with its own config and storage under DIR:
#   127.0.0.1:5000  HTTPS with a test CA added to the system store, basic auth (htpasswd)
#   127.0.0.1:5002  plain HTTP, bearer tokens from tests/token_server.py on 127.0.0.1:5001
# Both accept user "shop" with password "secret".
set -eu
dir=$1
tests=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
cd "$dir"

# A CA the system trusts, and a certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=podmgr-test-ca \
	-keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
	-extfile san.ext -out tls.crt 2>/dev/null
cp ca.crt /usr/local/share/ca-certificates/podmgr-test-ca.crt
update-ca-certificates >/dev/null 2>&1

htpasswd -Bbn shop secret > htpasswd
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=podmgr-test-tokens \
	-keyout token.key -out token.crt 2>/dev/null

cat > basic.yml <<CONFIG
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir/basic-storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5000, tls: {certificate: $dir/tls.crt, key: $dir/tls.key}}
auth: {htpasswd: {realm: podmgr-test, path: $dir/htpasswd}}
CONFIG
cat > token.yml <<CONFIG
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir/token-storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5002}
auth:
  token:
    realm: http://127.0.0.1:5001/token
    service: podmgr-test-registry
    issuer: podmgr-test-issuer
    rootcertbundle: $dir/token.crt
CONFIG

systemd-run --quiet --unit=registry-basic /usr/bin/docker-registry serve "$dir/basic.yml"
systemd-run --quiet --unit=registry-token /usr/bin/docker-registry serve "$dir/token.yml"
systemd-run --quiet --unit=registry-tokens /usr/bin/python3 "$tests/token_server.py" 5001 \
	"$dir/token.key" "$dir/token.crt" shop:secret
for port in 5000 5001 5002; do
	tries=0
	until /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" \
		2>/dev/null; do
		tries=$((tries + 1))
		[ $tries -lt 100 ] || { echo "registries.sh: nothing listens on $port" >&2; exit 1; }
		sleep 0.1
	done
done
