"""An OCI distribution API client over httpx with Docker's auth dance (Bearer challenge or Basic)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from a3s_power.registry.options import RegistryOptions
from a3s_power.store.errors import InsecureProtocol, ManifestNotFound, RegistryError
from a3s_power.store.manifest import MANIFEST_V2, OCI_MANIFEST
from a3s_power.store.names import ModelName

MANIFEST_ACCEPT = f"{MANIFEST_V2}, {OCI_MANIFEST}"
_CHALLENGE_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…",scope="…"` → ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_RE.finditer(rest)
    }
    return scheme.lower(), params


def registry_error(response: httpx.Response, context: str = "") -> RegistryError:
    """Turn a registry error reply (`{"errors":[{"code","message"}]}`) into a RegistryError."""
    message = ""
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0]
        message = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    elif isinstance(body, dict) and body.get("error"):
        message = str(body["error"])
    else:
        message = response.text[:200].strip() or response.reason_phrase
    prefix = f"{context}: " if context else ""
    return RegistryError(response.status_code, f"{prefix}{response.status_code} {message}".strip())


def basic_auth_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class RegistryClient:
    """One repository on one registry. Tokens are cached per scope for the life of the client."""

    def __init__(self, name: ModelName, options: RegistryOptions, *, push: bool = False) -> None:
        if name.scheme == "http" and not options.insecure:
            raise InsecureProtocol()
        self.name = name
        self.options = options
        self.base = options.base_url(name)
        self.scope = f"repository:{name.repository}:{'pull,push' if push else 'pull'}"
        self._auth_header: str | None = None
        self.http = httpx.AsyncClient(
            verify=not options.insecure,
            timeout=httpx.Timeout(options.read_timeout, connect=options.connect_timeout),
            headers={"User-Agent": options.user_agent},
            follow_redirects=False,
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.name.repository}/{path}"

    def resolve(self, location: str) -> str:
        return str(httpx.URL(self.base + "/").join(location))

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send with the cached credentials; on 401, answer the challenge once and resend."""
        response = await self._send(method, url, headers, content, follow_redirects)
        if response.status_code != 401:
            return response
        await self._authenticate(response)
        return await self._send(method, url, headers, content, follow_redirects)

    @asynccontextmanager
    async def stream(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, with_auth: bool = True
    ) -> AsyncIterator[httpx.Response]:
        all_headers = dict(headers or {})
        if with_auth and self._auth_header:
            all_headers["Authorization"] = self._auth_header
        async with self.http.stream(method, url, headers=all_headers, follow_redirects=True) as response:
            if response.status_code == 401 and with_auth:
                await response.aread()
                await self._authenticate(response)
                all_headers["Authorization"] = self._auth_header or ""
            else:
                yield response
                return
        async with self.http.stream(method, url, headers=all_headers, follow_redirects=True) as response:
            yield response

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        follow_redirects: bool,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if self._auth_header:
            all_headers["Authorization"] = self._auth_header
        try:
            return await self.http.request(
                method, url, headers=all_headers, content=content, follow_redirects=follow_redirects
            )
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise RegistryUnreachable(f"cannot reach the registry: {method} {url}: {reason}") from exc

    async def _authenticate(self, response: httpx.Response) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        if scheme == "basic":
            if not self.options.username:
                raise RegistryError(401, "unauthorized: registry requires a username and password")
            self._auth_header = basic_auth_header(self.options.username, self.options.password)
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(401, f"unauthorized: unsupported authentication challenge {header!r}")
        query = {"service": params.get("service", ""), "scope": params.get("scope") or self.scope}
        query["ts"] = str(int(time.time()))
        auth = (
            httpx.BasicAuth(self.options.username, self.options.password) if self.options.username else None
        )
        try:
            token_response = await self.http.get(params["realm"], params=query, auth=auth)
        except httpx.TransportError as exc:
            raise RegistryUnreachable(f"token endpoint {params['realm']}: {exc!r}") from exc
        if token_response.status_code != 200:
            raise registry_error(token_response, "authentication failed")
        try:
            data: Any = orjson.loads(token_response.content)
        except orjson.JSONDecodeError as exc:
            raise RegistryError(401, "authentication failed: token endpoint did not return JSON") from exc
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not token:
            raise RegistryError(401, "authentication failed: no token in response")
        self._auth_header = f"Bearer {token}"

    async def get_manifest(self, tag: str) -> bytes:
        response = await self.request(
            "GET", self.url(f"manifests/{tag}"), headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            raise ManifestNotFound()
        if response.status_code != 200:
            raise registry_error(response, "pull model manifest")
        return response.content


class RegistryUnreachable(RegistryError):
    """The registry could not be reached at all (connection refused, DNS, TLS)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)
        self.status = 502  # a bad gateway: the upstream registry, not this server
