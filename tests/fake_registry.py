"""A small, misbehaving-on-demand registry + blob host + Hugging Face hub, for pull tests on 127.0.0.1.

Plain ASGI served by uvicorn in a background thread. Knobs: bearer auth, redirecting blob GETs to a
separate blob host, dropping a connection mid-body once, throttling, serving corrupt bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from _store_helpers import free_port
from a3s_power.registry import RegistryOptions
from a3s_power.store.manifest import MEDIA_MODEL, MEDIA_TEMPLATE

Scope = dict[str, Any]

TOKEN = "token-for-tests"
UNAUTHORIZED = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
MANIFEST_UNKNOWN = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'


@dataclass
class Behaviour:
    bearer: bool = False
    redirect_to: str = ""  # base URL of another FakeRegistry acting as blob host
    drop_once_after: dict[str, int] = field(default_factory=dict)  # digest → bytes sent before dropping
    corrupt: set[str] = field(default_factory=set)
    throttle_s: float = 0.0  # sleep between 16 KiB chunks
    ignore_range: bool = False
    stall_after: dict[str, int] = field(default_factory=dict)  # key → bytes sent before going silent
    stall_times: int = 1  # how many responses per key stall


class FakeRegistry:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}  # path → bytes (HF resolve / direct URLs)
        self.hf_repos: dict[str, list[str]] = {}
        self.log: list[dict[str, Any]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("fake registry did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    # -- content -------------------------------------------------------------------------------
    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def add_model(self, repo: str, tag: str, layers: list[tuple[str, bytes]], config: bytes = b"{}") -> bytes:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": self.add_blob(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": media, "digest": self.add_blob(data), "size": len(data)}
                for media, data in layers
            ],
        }
        raw = orjson.dumps(manifest)
        self.manifests[(repo, tag)] = raw
        return raw

    def requests(self, kind: str) -> list[dict[str, Any]]:
        return [entry for entry in self.log if entry["kind"] == kind]

    # -- ASGI ----------------------------------------------------------------------------------
    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path: str = scope["path"]
        method: str = scope["method"]
        query = scope.get("query_string", b"").decode()
        entry = {"kind": "other", "method": method, "path": path, "range": headers.get("range"),
                 "auth": headers.get("authorization")}  # fmt: skip
        self.log.append(entry)
        b = self.behaviour
        if path == "/token":
            entry["kind"] = "token"
            entry["query"] = query
            await _reply(send, 200, orjson.dumps({"token": TOKEN}), "application/json")
            return
        if path.startswith("/api/models/"):
            entry["kind"] = "hf-api"
            repo = path[len("/api/models/") :]
            if repo not in self.hf_repos:
                await _reply(send, 404, b'{"error":"Repository not found"}', "application/json")
                return
            body = {"id": repo, "siblings": [{"rfilename": f} for f in self.hf_repos[repo]]}
            await _reply(send, 200, orjson.dumps(body), "application/json")
            return
        if path in self.files:
            entry["kind"] = "file"
            await self._serve_bytes(send, self.files[path], headers, key=path)
            return
        if path.startswith("/blob/"):
            entry["kind"] = "blob-host"
            digest = path[len("/blob/") :]
            await self._serve_blob(send, digest, headers)
            return
        match = re.match(r"^/v2/(.+)/(manifests|blobs)/([^/]+)$", path)
        if (path == "/v2/" or match) and b.bearer and headers.get("authorization") != f"Bearer {TOKEN}":
            challenge = (
                f'Bearer realm="{self.url}/token",service="fake-registry",'
                f'scope="repository:{match.group(1) if match else ""}:pull"'
            )
            await _reply(send, 401, UNAUTHORIZED, "application/json", [("www-authenticate", challenge)])
            return
        if match is None:
            await _reply(send, 404, b"not found", "text/plain")
            return
        repo, kind, ref = match.groups()
        if kind == "manifests":
            entry["kind"] = "manifest"
            entry["accept"] = headers.get("accept", "")
            raw = self.manifests.get((repo, ref))
            if raw is None:
                await _reply(send, 404, MANIFEST_UNKNOWN, "application/json")
                return
            await _reply(send, 200, raw, "application/vnd.docker.distribution.manifest.v2+json")
            return
        entry["kind"] = "blob"
        if b.redirect_to:
            await _reply(send, 307, b"", "text/plain", [("location", f"{b.redirect_to}/blob/{ref}")])
            return
        await self._serve_blob(send, ref, headers)

    async def _serve_blob(self, send: Any, digest: str, headers: dict[str, str]) -> None:
        data = self.blobs.get(digest)
        if data is None:
            await _reply(send, 404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json")
            return
        if digest in self.behaviour.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        await self._serve_bytes(send, data, headers, key=digest)

    async def _serve_bytes(self, send: Any, data: bytes, headers: dict[str, str], key: str) -> None:
        b = self.behaviour
        status, start, end = 200, 0, len(data) - 1
        extra: list[tuple[str, str]] = [("accept-ranges", "bytes")]
        match = re.match(r"bytes=(\d+)-(\d*)", headers.get("range", ""))
        if match and not b.ignore_range:
            start = int(match.group(1))
            end = min(int(match.group(2)), len(data) - 1) if match.group(2) else len(data) - 1
            if start >= len(data):
                await _reply(send, 416, b"", "text/plain")
                return
            status = 206
            extra.append(("content-range", f"bytes {start}-{end}/{len(data)}"))
        body = data[start : end + 1]
        await send({"type": "http.response.start", "status": status,
                    "headers": _h([("content-type", "application/octet-stream"),
                                   ("content-length", str(len(body))), *extra])})  # fmt: skip
        drop_after = b.drop_once_after.get(key)
        if drop_after is not None and len(body) > drop_after:
            del b.drop_once_after[key]
        else:
            drop_after = None
        stall_after = b.stall_after.get(key)
        if stall_after is not None and len(body) <= stall_after:
            stall_after = None
        if stall_after is not None:
            b.stall_times -= 1
            if b.stall_times <= 0:
                del b.stall_after[key]
        sent = 0
        step = 16 * 1024
        while sent < len(body):
            piece = body[sent : sent + step]
            if drop_after is not None and sent + len(piece) > drop_after:
                piece = piece[: max(0, drop_after - sent)]
                if piece:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                raise ConnectionAbortedError("fake registry drops the connection on purpose")
            if stall_after is not None and sent + len(piece) > stall_after:
                await self._stall()
                raise ConnectionAbortedError("fake registry stalled on purpose")
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent += len(piece)
            if b.throttle_s:
                await asyncio.sleep(b.throttle_s)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stall(self) -> None:
        while not self.server.should_exit:  # silent with the connection open, until we stop
            await asyncio.sleep(0.05)


def _h(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in pairs]


async def _reply(
    send: Any, status: int, body: bytes, ctype: str, extra: list[tuple[str, str]] | None = None
) -> None:
    headers = [("content-type", ctype), ("content-length", str(len(body))), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": _h(headers)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def pull_options(registry: FakeRegistry | None = None, **overrides: object) -> RegistryOptions:
    """Fast test settings: 64 KiB parts, tiny retry/progress intervals; `registry` serves Ollama's host."""
    base: dict[str, object] = {
        "progress_interval": 0.005,
        "retry_base_delay": 0.01,
        "checkpoint_interval": 0.02,
        "min_part_size": 64 * 1024,
        "max_part_size": 64 * 1024,
    }
    if registry is not None:
        base["endpoints"] = {"registry.ollama.ai": registry.url}
    base.update(overrides)
    return RegistryOptions(**base)  # type: ignore[arg-type]


def publish(server: FakeRegistry, model: bytes, repo: str = "library/tiny", tag: str = "latest") -> bytes:
    """Serve `model` as `repo:tag` with a template layer; returns the manifest bytes."""
    return server.add_model(repo, tag, [(MEDIA_MODEL, model), (MEDIA_TEMPLATE, b"{{ .Prompt }}")])


_PULL_SCRIPT = """
import asyncio
from a3s_power.registry import RegistryOptions, pull_model
from a3s_power.store.store import ModelStore
opts = RegistryOptions(endpoints={{"registry.ollama.ai": "{url}"}}, min_part_size=65536, max_part_size=65536,
                       max_parallel=2, checkpoint_interval=0.01, progress_interval=0.01)
async def main():
    async for event in pull_model(ModelStore("{root}", env={{}}), "tiny", options=opts):
        print(event, flush=True)
asyncio.run(main())
"""


def start_pull_process(registry: FakeRegistry, root: Path) -> subprocess.Popen[bytes]:
    """`tiny` pulled from `registry` into `root` by another process (2 parallel 64 KiB parts);
    it prints each progress event."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "python")}
    return subprocess.Popen(
        [sys.executable, "-c", _PULL_SCRIPT.format(url=registry.url, root=root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
