"""The Litestar application: state (settings, store, scheduler), routes, errors, lifespan."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, Response, get, head
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST

from a3s_power.api.anthropic.routes import ANTHROPIC_ROUTER
from a3s_power.api.auth import api_key_guard
from a3s_power.api.errors import EXCEPTION_HANDLERS
from a3s_power.api.limits import api_key_layer, request_limits_layer
from a3s_power.api.ollama.manage import MANAGE_ROUTES
from a3s_power.api.ollama.routes import ROUTES as OLLAMA_ROUTES
from a3s_power.api.openai.routes import OPENAI_ROUTER
from a3s_power.api.openapi import openapi_route
from a3s_power.config import Settings
from a3s_power.observability.metrics import http_metrics_middleware
from a3s_power.service.state import STATE_KEY, ServerState, state_of
from a3s_power.store.store import ModelStore

__all__ = ["ServerState", "create_app", "origins_regex", "server_state"]

log = logging.getLogger(__name__)

DEFAULT_ORIGINS = [
    f"{scheme}://{host}{port}"
    for scheme in ("http", "https")
    for host in ("localhost", "127.0.0.1", "0.0.0.0")
    for port in ("", ":*")
] + ["app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"]


def create_app(settings: Settings | None = None, store: ModelStore | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    state = ServerState.create(settings, store)
    store = state.store

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

    app = Litestar(
        route_handlers=[
            *OLLAMA_ROUTES,
            *MANAGE_ROUTES,
            OPENAI_ROUTER,
            ANTHROPIC_ROUTER,
            metrics_route,
            metrics_head,
            openapi_route,
        ],
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
        state=State({STATE_KEY: state}),
        openapi_config=None,  # our own document at /openapi.json (api/openapi.py)
        logging_config=None,
        debug=False,
        request_max_body_size=None,  # limited by request_limits_layer (blob uploads are not)
    )
    # outermost, before routing and CORS: the key check, then the body limits
    handler: Any = request_limits_layer(app.asgi_handler)  # type: ignore[arg-type]
    if settings.api_keys:
        handler = api_key_layer(handler, settings.api_keys)
    app.asgi_handler = handler
    return app


@get("/metrics", media_type="text/plain", sync_to_thread=False)
def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus exposition of this server's metrics."""
    body = state_of(request).metrics.exposition()
    return Response(body, headers={"content-type": CONTENT_TYPE_LATEST})


@head("/metrics", sync_to_thread=False)
def metrics_head() -> Response[None]:
    return Response(None, headers={"content-type": CONTENT_TYPE_LATEST})


def origins_regex(patterns: list[str]) -> str:
    """Ollama's origin patterns (`*` matches anything, e.g. `http://localhost:*`) as one regex."""
    if "*" in patterns:
        return ".*"
    return "|".join(re.escape(p).replace(r"\*", ".*") for p in patterns)


def server_state(app: Litestar) -> ServerState:
    return state_of(app)
