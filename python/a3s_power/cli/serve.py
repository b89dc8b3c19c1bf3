"""`a3s-power serve`: the HTTP server (Ollama's native API) on OLLAMA_HOST, default 127.0.0.1:11434."""

from __future__ import annotations

import logging
import sys
from dataclasses import replace

from a3s_power.cli.app import app


@app.command
def serve(
    *, host: str | None = None, port: int | None = None, rpc: str | None = None, verbose: bool = False
) -> None:
    """Start the server. Settings come from the environment (OLLAMA_HOST, OLLAMA_MODELS,
    OLLAMA_KEEP_ALIVE, OLLAMA_NUM_PARALLEL, OLLAMA_MAX_LOADED_MODELS, OLLAMA_MAX_QUEUE,
    OLLAMA_CONTEXT_LENGTH, OLLAMA_FLASH_ATTENTION, OLLAMA_KV_CACHE_TYPE, OLLAMA_ORIGINS,
    OLLAMA_NOPRUNE, OLLAMA_DEBUG; A3S_POWER_API_KEYS, A3S_POWER_NUM_THREAD, A3S_POWER_RPC).

    Parameters
    ----------
    host
        Address to bind (overrides OLLAMA_HOST's host).
    port
        Port to bind (overrides OLLAMA_HOST's port).
    rpc
        ggml RPC workers (`a3s-power rpc-server`) to split models across: host:port[,host:port…]
        (overrides A3S_POWER_RPC). See docs/scale-out.md.
    verbose
        Log at debug level, llama.cpp's log included.
    """
    import uvicorn

    from a3s_power.api import create_app
    from a3s_power.config import Settings
    from a3s_power.runtime.rpc import parse_endpoints

    try:
        settings = Settings.from_env()
        workers = parse_endpoints(rpc) if rpc is not None else settings.rpc_servers
    except ValueError as exc:
        sys.exit(f"Error: {exc}")
    settings = replace(settings, host=host or settings.host, port=port or settings.port, rpc_servers=workers)
    level = logging.DEBUG if verbose or settings.debug else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if not (verbose or settings.debug):
        logging.getLogger("a3s_power.llama").setLevel(logging.WARNING)
    logging.getLogger(__name__).info(
        "A3S Power listening on %s:%d (models: %s)", settings.host, settings.port, settings.models_root
    )
    warning = exposure_warning(settings.host, settings.api_keys)
    if warning:
        logging.getLogger(__name__).warning("%s", warning)
    if settings.rpc_servers:
        logging.getLogger(__name__).info("RPC workers: %s", ", ".join(settings.rpc_servers))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="debug" if verbose else "warning",
        timeout_graceful_shutdown=5,
    )


def exposure_warning(host: str, api_keys: tuple[str, ...]) -> str:
    """The warning for a bind address reachable from other machines with no API key set ("" if none)."""
    import ipaddress

    if api_keys:
        return ""
    bare = host.strip("[]")
    if bare in ("localhost", ""):
        return ""
    try:
        if ipaddress.ip_address(bare).is_loopback:
            return ""
    except ValueError:
        pass  # a host name: it may resolve to anything
    return (
        f"listening on {host}, which other machines can reach, without API keys: anyone who can connect "
        "can run, pull, create and delete models (set A3S_POWER_API_KEYS, or bind 127.0.0.1)"
    )
