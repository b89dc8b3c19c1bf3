"""A real A3S Power server (uvicorn in a thread) on 127.0.0.1, for tests with real HTTP clients."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from a3s_power.api import create_app
from a3s_power.config import Settings
from a3s_power.store.create import CreateRequest, create_events
from a3s_power.store.store import ModelStore


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ModelStore(settings.models_root, env={})
        self.app = create_app(settings, self.store)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, lifespan="on", log_level="warning", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)

    @property
    def scheduler(self):  # type: ignore[no-untyped-def]
        return self.app.state.power.scheduler

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def server_settings(root: Path, **overrides: object) -> Settings:
    base = Settings(models_root=root, num_parallel=2, context_length=2048, noprune=True)
    return replace(base, **overrides)  # type: ignore[arg-type]


def add_gguf_model(
    store: ModelStore, name: str, gguf: Path, parameters: dict[str, object] | None = None, **fields: object
) -> None:
    """Create `name` in the store from a GGUF file, as `ollama create` with `FROM <file>` does."""
    digest = store.add_blob_file(gguf).digest
    request = CreateRequest(model=name, files={gguf.name: digest}, parameters=parameters, **fields)  # type: ignore[arg-type]
    for _ in create_events(store, request):
        pass


def openai_client(server: LiveServer, api_key: str = "unused") -> Any:
    """The official `openai` SDK pointed at `server` (no retries: a failure shows at once)."""
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=api_key, timeout=120, max_retries=0)


def anthropic_client(server: LiveServer, api_key: str = "unused") -> Any:
    """The official `anthropic` SDK pointed at `server`."""
    import anthropic

    return anthropic.Anthropic(base_url=server.url, api_key=api_key, timeout=120, max_retries=0)


def error_text(path: str, response: httpx.Response) -> str:
    """The error message of a failed response in the envelope of the API family `path` belongs to:
    Anthropic's `{"type": "error", "error": {"message"}}`, OpenAI's `{"error": {"message"}}`,
    Ollama's `{"error": "..."}`."""
    body = response.json()
    if path.startswith("/v1/messages"):
        assert body["type"] == "error"
        return str(body["error"]["message"])
    if path.startswith("/v1/"):
        return str(body["error"]["message"])
    return str(body["error"])
