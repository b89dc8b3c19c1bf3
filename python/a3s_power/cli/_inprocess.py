"""Where `run` finds its server: the one answering at OLLAMA_HOST, else one started in this process.

The in-process server is the same application `serve` runs (one chat pipeline under every
surface), on an ephemeral 127.0.0.1 port for this process only, so `run` is the same HTTP client
either way. It serves the user's store, or — for a GGUF path or an embedded model (a PyPI
package) that is not in the store — a private temporary store holding only that file (linked,
not copied).
"""

from __future__ import annotations

import contextlib
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from a3s_power.cli._client import Client, ClientError, base_url


def server_answers(url: str | None = None, timeout: float = 2.0) -> bool:
    """The heartbeat (`HEAD /`) of the server at OLLAMA_HOST answers."""
    import httpx

    url = url or base_url()
    try:
        with httpx.Client(base_url=url, timeout=timeout, trust_env=False) as http:
            return http.head("/").status_code < 500
    except httpx.HTTPError:
        return False


def model_name_for_file(path: Path) -> str:
    """A valid model name for a GGUF file (its stem, lower-cased, other characters → '-')."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._") or "model"
    return stem[:80]


def _private_store(root: Path, name: str, gguf: Path) -> None:
    """A store in `root` whose model `name` is `gguf` (the blob is a link to the file)."""
    from a3s_power.store.blobs import sha256_file
    from a3s_power.store.create import CreateRequest, create_events
    from a3s_power.store.store import ModelStore

    store = ModelStore(root, env={})
    digest = sha256_file(gguf)
    blob = store.blob_path(digest)
    blob.parent.mkdir(parents=True, exist_ok=True)
    try:
        blob.hardlink_to(gguf)
    except OSError:
        blob.symlink_to(gguf.resolve())
    for _ in create_events(store, CreateRequest(model=name, files={gguf.name: digest})):
        pass


@contextlib.contextmanager
def local_server(gguf: tuple[str, Path] | None = None) -> Iterator[str]:
    """Start the server in this process; yield its URL. `gguf` = (name, file): serve only that
    file (a private store, removed afterwards); else the user's store."""
    import uvicorn

    from a3s_power.api import create_app
    from a3s_power.config import Settings
    from a3s_power.store.store import ModelStore

    settings = replace(
        Settings.from_env(), host="127.0.0.1", port=0, noprune=True, api_keys=(), num_parallel=1
    )
    with contextlib.ExitStack() as stack:
        if gguf is not None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="a3s-power-run-"))) / "models"
            _private_store(root, gguf[0], gguf[1])
            settings = replace(settings, models_root=root)
        store = ModelStore(settings.models_root, env={} if gguf is not None else None)
        app = create_app(settings, store)
        sock = stack.enter_context(socket.socket())
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, lifespan="on", log_level="critical", access_log=False, timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise ClientError("could not start the model server in this process")
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def in_user_store(name: str) -> bool:
    from a3s_power.store.errors import StoreError
    from a3s_power.store.store import ModelStore

    try:
        return ModelStore().find(name) is not None
    except StoreError:
        return False


@contextlib.contextmanager
def run_server(model: str) -> Iterator[tuple[Client, str]]:
    """A client for `model`'s server and the name to ask it for: a GGUF path or an embedded model
    not in the store → a private in-process server; else the server at OLLAMA_HOST if one answers;
    else an in-process server on the user's store (which pulls what it lacks, as Ollama's does)."""
    from a3s_power.bundled import bundled_model_path
    from a3s_power.errors import ModelNotFound

    path = Path(model).expanduser()
    gguf: tuple[str, Path] | None = None
    url: str | None = None
    if path.suffix.lower() == ".gguf" or path.is_file():
        if not path.is_file():
            raise ClientError(str(ModelNotFound(model)))
        gguf = (model_name_for_file(path), path)
    elif server_answers():
        url = base_url()
    elif not in_user_store(model):
        try:
            gguf = (model, bundled_model_path(model))
        except KeyError:
            gguf = None
        except FileNotFoundError as exc:
            raise ClientError(str(exc)) from None
    with contextlib.ExitStack() as stack:
        if url is None:
            url = stack.enter_context(local_server(gguf))
        client = Client(url)
        stack.callback(client.close)
        yield client, gguf[0] if gguf is not None else model
