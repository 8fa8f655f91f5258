# SPDX-License-Identifier: LGPL-2.1-or-later
"""docker://REFERENCE: a registry over the Docker Registry HTTP API v2.

https://distribution.github.io/distribution/spec/api/ and .../spec/auth/token/.  HTTPS
with the system's CA store; plain HTTP only for hosts podmgr.toml marks insecure.  Bearer
tokens and basic auth, with credentials from the root-only auth file.  Signatures come
from the lookaside configured for the registry (containers-registries.d(5) layout:
LOOKASIDE/REPO@ALGO=HEX/signature-N).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPMessage, HTTPResponse
from pathlib import Path
from typing import IO, BinaryIO, cast

from podmgr.image import oci, reference
from podmgr.image.digest import Digest
from podmgr.image.oci import Descriptor
from podmgr.image.transports.base import ImageSource, SourceContext, SourceError

log = logging.getLogger(__name__)

ACCEPT = ", ".join((oci.OCI_INDEX, oci.OCI_MANIFEST, oci.DOCKER_LIST, oci.DOCKER_MANIFEST))
TIMEOUT = 60
MAX_SIGNATURES = 64
# The registry Docker Hub's short names live on.
HOSTS = {"docker.io": "registry-1.docker.io"}


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects (blob storage), but never carry credentials to another host."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if (
            new is not None
            and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc
        ):
            new.remove_header("Authorization")
        return new


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """Parse a WWW-Authenticate header: (scheme, parameters)."""
    scheme, _, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistrySource:
    rereadable = False  # each read is a download: keep a verified copy instead

    def __init__(self, ref: reference.Reference, context: SourceContext) -> None:
        self.ref = ref
        self.context = context
        host = HOSTS.get(ref.registry, ref.registry)
        scheme = "http" if context.registry_insecure(ref.registry) else "https"
        self.base = f"{scheme}://{host}/v2/{ref.repository}"
        self.credentials = context.registry_credentials(ref.registry)
        self.authorization: str | None = None
        self.opener = urllib.request.build_opener(
            _SameHostRedirects(), urllib.request.HTTPSHandler(context=ssl.create_default_context())
        )

    def describe(self) -> str:
        return f"docker://{self.ref}"

    def _request(self, url: str, accept: str = "", retry: bool = True) -> HTTPResponse:
        # Only http(s) URLs come here: the registry's base, built from the reference.
        request = urllib.request.Request(url)  # noqa: S310
        if accept:
            request.add_header("Accept", accept)
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        log.debug("GET %s", url)
        try:
            # Only http(s) URLs are built here: the registry's base and its redirects.
            return cast(HTTPResponse, self.opener.open(request, timeout=TIMEOUT))
        except urllib.error.HTTPError as error:
            if error.code == 401 and retry:
                self._authenticate(error.headers.get("WWW-Authenticate", ""))
                return self._request(url, accept, retry=False)
            if error.code == 401:
                raise SourceError(
                    f"{self.describe()}: the registry refused the credentials "
                    "(check /etc/podmgr/auth.json)"
                ) from None
            if error.code == 404:
                raise SourceError(
                    f"{self.describe()}: not found in the registry (check the name and tag)"
                ) from None
            raise SourceError(
                f"{self.describe()}: {url}: HTTP {error.code} {error.reason}"
            ) from None
        except urllib.error.URLError as error:
            hint = ""
            if isinstance(error.reason, ssl.SSLError):
                hint = (
                    " (no HTTPS: if the registry speaks plain HTTP, mark the registry "
                    "insecure in podmgr.toml; if its certificate is not trusted, add its "
                    "CA to the system store)"
                )
            raise SourceError(f"{self.describe()}: {error.reason}{hint}") from None
        except (OSError, TimeoutError) as error:
            raise SourceError(f"{self.describe()}: {error}") from None

    def _authenticate(self, header: str) -> None:
        scheme, params = _challenge(header)
        basic = None
        if self.credentials:
            user, password = self.credentials
            basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if scheme == "basic":
            if basic is None:
                raise SourceError(
                    f"{self.describe()}: the registry asks for a login (add "
                    f"credentials for {self.ref.registry} to "
                    "/etc/podmgr/auth.json)"
                )
            self.authorization = basic
            return
        if scheme != "bearer" or "realm" not in params:
            raise SourceError(f"{self.describe()}: unsupported authentication {header!r}")
        if urllib.parse.urlsplit(params["realm"]).scheme not in ("http", "https"):
            raise SourceError(
                f"{self.describe()}: the token service {params['realm']!r} is not an http(s) URL"
            )
        query = {"scope": f"repository:{self.ref.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        request = urllib.request.Request(  # noqa: S310 -- the realm was checked above
            params["realm"] + "?" + urllib.parse.urlencode(query)
        )
        if basic:
            request.add_header("Authorization", basic)
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            raise SourceError(
                f"{self.describe()}: the token service refused access (HTTP "
                f"{error.code}; check /etc/podmgr/auth.json)"
            ) from None
        except (OSError, ValueError) as error:
            raise SourceError(
                f"{self.describe()}: no token from {params['realm']}: {error}"
            ) from None
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str):
            raise SourceError(f"{self.describe()}: the token service answered no token")
        self.authorization = f"Bearer {token}"

    def manifest(self, digest: Digest | None = None) -> tuple[bytes, str]:
        target = str(digest or self.ref.digest or self.ref.tag)
        with self._request(f"{self.base}/manifests/{target}", ACCEPT) as response:
            data = response.read(oci.MAX_METADATA + 1)
            kind = response.headers.get_content_type()
        if len(data) > oci.MAX_METADATA:
            raise SourceError(f"{self.describe()}: manifest larger than {oci.MAX_METADATA} bytes")
        return data, kind if kind != "text/plain" else ""

    def blob(self, descriptor: Descriptor) -> BinaryIO:
        return cast(BinaryIO, self._request(f"{self.base}/blobs/{descriptor.digest}"))

    def signatures(self, manifest_digest: Digest) -> list[bytes]:
        lookaside = self.context.registry_lookaside(self.ref.registry)
        if not lookaside:
            return []
        found = []
        base = (
            f"{lookaside.rstrip('/')}/{self.ref.repository}"
            f"@{manifest_digest.algorithm}={manifest_digest.hex}"
        )
        for number in range(1, MAX_SIGNATURES + 1):
            data = _fetch_signature(f"{base}/signature-{number}", self.opener)
            if data is None:
                break
            found.append(data)
        return found

    def detached_signature(self) -> tuple[str, bytes] | None:
        return None

    def default_name(self) -> str | None:
        return str(self.ref)  # with its digest, if pulled by one: checked as --name's is

    def close(self) -> None:
        pass


def _fetch_signature(url: str, opener: urllib.request.OpenerDirector) -> bytes | None:
    """One lookaside signature; None when there is no such signature."""
    if url.startswith("file://"):
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        return path.read_bytes() if path.is_file() else None
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            return cast(bytes, response.read(1 << 20))
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise SourceError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise SourceError(f"{url}: {error}") from None


def open_registry(spec: str, context: SourceContext) -> ImageSource:
    if not spec.startswith("//"):
        raise SourceError(f"docker:{spec}: write it as docker://REFERENCE")
    return RegistrySource(reference.parse(spec[2:]), context)
