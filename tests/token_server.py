# SPDX-License-Identifier: LGPL-2.1-or-later
"""A Docker registry token service for tests (distribution's spec/auth/token.md).

    token_server.py PORT KEY.pem CERT.pem USER:PASSWORD

Answers GET /token?service=S&scope=repository:NAME:pull with a JWT signed by KEY (RS256,
with CERT in its x5c header, which the registry checks against its rootcertbundle), if
the basic-auth credentials match; 401 otherwise.  Signing uses openssl(1): the standard
library has no RSA.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.parse

ISSUER = "podmgr-test-issuer"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenHandler(http.server.BaseHTTPRequestHandler):
    key = cert_der = expected = ""

    def do_GET(self) -> None:
        given = self.headers.get("Authorization", "")
        if given != "Basic " + base64.b64encode(self.expected.encode()).decode():
            self.send_response(401)
            self.end_headers()
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der]}
        claims = {
            "iss": ISSUER,
            "sub": self.expected.split(":")[0],
            "aud": query.get("service", [""])[0],
            "exp": now + 600,
            "nbf": now - 60,
            "iat": now,
            "jti": b64(os.urandom(12)),
            "access": access,
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        body = json.dumps({"token": f"{signing_input}.{b64(signature)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    port, key, cert, credentials = sys.argv[1:5]
    der = subprocess.run(
        ["openssl", "x509", "-in", cert, "-outform", "DER"], capture_output=True, check=True
    ).stdout
    TokenHandler.key = key
    TokenHandler.cert_der = base64.b64encode(der).decode()
    TokenHandler.expected = credentials
    http.server.HTTPServer(("127.0.0.1", int(port)), TokenHandler).serve_forever()


if __name__ == "__main__":
    main()
