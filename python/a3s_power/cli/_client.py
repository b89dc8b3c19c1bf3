"""The HTTP client of the CLI's client commands, as Ollama's `api.Client` talks to its server.

The server address comes from OLLAMA_HOST (`config.parse_host`, keeping an `https://` scheme and a path);
every command starts with the heartbeat `HEAD /`. A failure of any kind is a `ClientError` whose text is
what the command prints after `Error: ` before exiting with status 1 (`session` does that).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from a3s_power import __version__

if TYPE_CHECKING:
    import httpx  # imported when a client is made: the CLI's other commands start faster without it

CONNECT_ERROR = "could not connect to ollama server, run 'a3s-power serve' to start it"
UNKNOWN_ERROR = "something went wrong, please see the a3s-power server logs for details"
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "::")


class ClientError(Exception):
    """A failed call; `str(err)` is the server's error text (or the transport failure's)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def base_url(env: Mapping[str, str] | None = None) -> str:
    """`http://127.0.0.1:11434` by default; OLLAMA_HOST may name a scheme, host, port and path."""
    from a3s_power.config import parse_host
    from a3s_power.envvars import env_value

    env = os.environ if env is None else env
    raw = env_value(env, "OLLAMA_HOST")
    scheme, path = "http", ""
    if "://" in raw:
        parts = urlsplit(raw)
        scheme = parts.scheme.lower() or "http"
        path = parts.path.rstrip("/")
    host, port = parse_host(raw)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def _user_agent() -> str:
    system = platform.system().lower()
    return (
        f"a3s-power/{__version__} ({platform.machine().lower()} {system}) Python/{platform.python_version()}"
    )


def _error_text(status: int, body: bytes) -> str:
    """Ollama's checkError: the body's `error` field, else the raw body, else a generic text."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip() or UNKNOWN_ERROR
    if isinstance(decoded, dict) and decoded.get("error"):
        return str(decoded["error"])
    return UNKNOWN_ERROR


class Client:
    """A thin synchronous client of the native API (`/api/*`)."""

    def __init__(self, url: str | None = None, *, transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        self.url = url or base_url()
        host = urlsplit(self.url).hostname or ""
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(None, connect=30.0),
            headers={"User-Agent": _user_agent()},
            trust_env=host not in _LOOPBACK and not host.startswith("127."),  # Go never proxies loopback
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    @contextmanager
    def _transport_errors(self, method: str, path: str) -> Iterator[None]:
        """httpx failures → ClientError: CONNECT_ERROR when the server cannot be reached."""
        import httpx

        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ClientError(CONNECT_ERROR) from exc
        except httpx.HTTPError as exc:
            raise ClientError(f"{method} {self.url}{path}: {exc or type(exc).__name__}") from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._transport_errors(method, path):
            return self._http.request(method, path, **kwargs)

    def heartbeat(self) -> None:
        """`HEAD /`; a server that cannot be reached gives CONNECT_ERROR."""
        response = self._send("HEAD", "/")
        if response.status_code >= 400:
            raise ClientError(_error_text(response.status_code, response.content), response.status_code)

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """A JSON request; the decoded JSON reply (None for an empty body)."""
        response = self._send(
            method, path, json=body, headers={"Accept": "application/json"} if body is not None else None
        )
        if response.status_code >= 400:
            raise ClientError(_error_text(response.status_code, response.content), response.status_code)
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ClientError(f"unmarshal: {exc}") from exc

    def status(self, method: str, path: str) -> int:
        """The status code of a request without a body (e.g. `HEAD /api/blobs/<digest>`)."""
        response = self._send(method, path)
        if response.status_code >= 400 and response.status_code != 404:
            raise ClientError(_error_text(response.status_code, response.content), response.status_code)
        return response.status_code

    def upload(self, path: str, content: Iterable[bytes], size: int) -> None:
        """POST raw bytes (`content` is read lazily, `size` is sent as Content-Length)."""
        response = self._send(
            "POST",
            path,
            content=content,
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )
        if response.status_code >= 400:
            raise ClientError(_error_text(response.status_code, response.content), response.status_code)

    def stream(self, path: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON object; a line with a non-empty `error` raises ClientError."""
        request = self._http.build_request(
            "POST", path, json=body, headers={"Accept": "application/x-ndjson"}
        )
        with self._transport_errors("POST", path):
            response = self._http.send(request, stream=True)
        with closing(response), self._transport_errors("POST", path):
            if response.status_code >= 400:
                raise ClientError(_error_text(response.status_code, response.read()), response.status_code)
            for line in response.iter_lines():
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise ClientError(line.strip()) from None
                if not isinstance(item, dict):
                    raise ClientError(line.strip())
                if item.get("error"):
                    raise ClientError(str(item["error"]), response.status_code)
                yield item


def fail(message: str) -> NoReturn:
    """Print `Error: <message>` to stderr and exit 1, as every Ollama command does."""
    sys.stdout.flush()
    print(f"Error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


@contextmanager
def session() -> Iterator[Client]:
    """A client that has passed the heartbeat; a ClientError inside the block becomes `fail`."""
    client = Client()
    try:
        client.heartbeat()
        yield client
    except ClientError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        client.close()
