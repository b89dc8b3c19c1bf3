"""The Litestar application: state (settings, store, scheduler), routes, errors, lifespan."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST

from a3s_power.api.anthropic.routes import ANTHROPIC_ROUTER
from a3s_power.api.auth import api_key_guard
from a3s_power.api.errors import EXCEPTION_HANDLERS
from a3s_power.api.ollama.manage import MANAGE_ROUTES
from a3s_power.api.ollama.routes import ROUTES as OLLAMA_ROUTES
from a3s_power.api.openai.routes import OPENAI_ROUTER
from a3s_power.config import Settings
from a3s_power.observability.metrics import Metrics, http_metrics_middleware
from a3s_power.runtime.scheduler import Scheduler
from a3s_power.store.store import ModelStore

log = logging.getLogger(__name__)

DEFAULT_ORIGINS = [
    f"{scheme}://{host}{port}"
    for scheme in ("http", "https")
    for host in ("localhost", "127.0.0.1", "0.0.0.0")
    for port in ("", ":*")
] + ["app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]


@dataclass
class ServerState:
    """What every handler reaches through `request.app.state.power`."""

    settings: Settings
    store: ModelStore
    scheduler: Scheduler
    metrics: Metrics


def create_app(settings: Settings | None = None, store: ModelStore | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    store = store or ModelStore(settings.models_root)
    scheduler = Scheduler(
        max_loaded_models=settings.max_loaded_models,
        max_queue=settings.max_queue,
        default_keep_alive=settings.keep_alive,
    )
    state = ServerState(settings=settings, store=store, scheduler=scheduler, metrics=Metrics(scheduler))

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if not settings.noprune:
            removed = store.prune()
            if removed:
                log.info("pruned %d unused blob(s)", len(removed))
        try:
            yield
        finally:
            await state.scheduler.shutdown()

    return Litestar(
        route_handlers=[*OLLAMA_ROUTES, *MANAGE_ROUTES, OPENAI_ROUTER, ANTHROPIC_ROUTER, metrics_route],
        guards=[api_key_guard(settings.api_keys)] if settings.api_keys else [],
        middleware=[http_metrics_middleware(state.metrics)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        cors_config=CORSConfig(
            allow_origins=[],
            allow_origin_regex=origins_regex([*DEFAULT_ORIGINS, *settings.origins]),
            allow_headers=["*"],
            allow_methods=["*"],
        ),
        lifespan=[lifespan],
        state=State({"power": state}),
        openapi_config=None,
        logging_config=None,
        debug=False,
        request_max_body_size=None,
    )


@get("/metrics", media_type="text/plain", sync_to_thread=False)
def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus exposition of this server's metrics."""
    body = request.app.state.power.metrics.exposition()
    return Response(body, headers={"content-type": CONTENT_TYPE_LATEST})


def origins_regex(patterns: list[str]) -> str:
    """Ollama's origin patterns (`*` matches anything, e.g. `http://localhost:*`) as one regex."""
    if "*" in patterns:
        return ".*"
    return "|".join(re.escape(p).replace(r"\*", ".*") for p in patterns)


def server_state(app: Litestar) -> ServerState:
    return app.state.power  # type: ignore[no-any-return]
