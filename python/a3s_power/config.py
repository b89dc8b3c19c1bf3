"""Server settings, read once from the environment (Ollama's variables, then A3S_POWER_* ones)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from a3s_power.durations import keep_alive_seconds
from a3s_power.envvars import env_flag, env_value, trim
from a3s_power.store.layout import default_models_root

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11434


def parse_host(value: str) -> tuple[str, int]:
    """`OLLAMA_HOST` forms: `host`, `host:port`, `:port`, `[::]:port`, `http(s)://host[:port]`."""
    value = trim(value)
    if not value:
        return DEFAULT_HOST, DEFAULT_PORT
    scheme_port = DEFAULT_PORT
    if "://" in value:
        parts = urlsplit(value)
        scheme_port = 443 if parts.scheme == "https" else 80
        value = parts.netloc
    host, port = value, scheme_port
    if value.startswith("["):
        end = value.find("]")
        host = value[1:end]
        rest = value[end + 1 :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, raw_port = value.partition(":")
        port = int(raw_port) if raw_port.isdigit() and 0 < int(raw_port) < 65536 else DEFAULT_PORT
    return host or DEFAULT_HOST, port


def _int(env: Mapping[str, str], *keys: str, default: int) -> int:
    for key in keys:
        raw = env_value(env, key)
        if raw:
            try:
                return int(raw)
            except ValueError:
                continue
    return default


KV_CACHE_TYPES = ("f16", "f32", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")


def _kv_cache_type(env: Mapping[str, str]) -> str:
    """OLLAMA_KV_CACHE_TYPE; an unknown type falls back to f16 with a warning (as Ollama)."""
    value = env_value(env, "OLLAMA_KV_CACHE_TYPE").lower()
    if value and value not in KV_CACHE_TYPES:
        logging.getLogger(__name__).warning("invalid OLLAMA_KV_CACHE_TYPE %r; using f16", value)
        return "f16"
    return value or "f16"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    models_root: Path = field(default_factory=default_models_root)
    keep_alive: float = 300.0  # seconds; math.inf = never unload
    num_parallel: int = 4  # slots per loaded model (Ollama: 1); continuous batching makes more cheap
    max_loaded_models: int = 3
    max_queue: int = 512
    context_length: int = 4096
    num_thread: int = 0  # 0 = llama.cpp's default
    noprune: bool = False
    origins: tuple[str, ...] = ()
    debug: bool = False
    api_keys: tuple[str, ...] = ()  # A3S_POWER_API_KEYS (comma-separated); empty = no auth
    flash_attention: bool | None = None  # OLLAMA_FLASH_ATTENTION; None = llama.cpp's auto
    kv_cache_type: str = "f16"  # OLLAMA_KV_CACHE_TYPE
    rpc_servers: tuple[str, ...] = ()  # A3S_POWER_RPC / serve --rpc: ggml RPC workers (host:port)
    image_urls: bool = False  # A3S_POWER_IMAGE_URLS: fetch http(s) image URLs (off: data: URLs only)
    image_url_timeout: float = 10.0  # A3S_POWER_IMAGE_URL_TIMEOUT seconds, whole fetch
    image_url_max_bytes: int = 20 * 1024 * 1024  # A3S_POWER_IMAGE_URL_MAX_BYTES
    image_url_allow_private: bool = False  # A3S_POWER_IMAGE_URLS_ALLOW_PRIVATE: loopback / private hosts too
    cache_ram_mib: int = 8192  # A3S_POWER_CACHE_RAM: host-RAM prompt cache per model (MiB; 0 = off)
    draft_max: int = 0  # A3S_POWER_SPECULATIVE: n-gram draft length for requests without draft_max (0 = off)
    grammar_timeout: float = 10.0  # A3S_POWER_GRAMMAR_TIMEOUT: seconds to compile a request's schemas

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        host, port = parse_host(env.get("OLLAMA_HOST", ""))
        keep_alive_raw = env_value(env, "OLLAMA_KEEP_ALIVE")
        keep_alive = 300.0
        if keep_alive_raw:
            try:
                keep_alive = keep_alive_seconds(
                    float(keep_alive_raw) if keep_alive_raw.lstrip("-").isdigit() else keep_alive_raw
                )
            except Exception:  # noqa: BLE001  Ollama falls back to the default on a bad value
                keep_alive = 300.0
        origins = tuple(o.strip() for o in env_value(env, "OLLAMA_ORIGINS").split(",") if o.strip())
        return cls(
            host=host,
            port=port,
            models_root=default_models_root(env),
            keep_alive=keep_alive,
            num_parallel=max(1, _int(env, "OLLAMA_NUM_PARALLEL", "A3S_POWER_NUM_PARALLEL", default=4)),
            max_loaded_models=max(1, _int(env, "OLLAMA_MAX_LOADED_MODELS", default=3) or 3),
            max_queue=max(1, _int(env, "OLLAMA_MAX_QUEUE", default=512)),
            context_length=max(4, _int(env, "OLLAMA_CONTEXT_LENGTH", default=4096) or 4096),
            num_thread=max(0, _int(env, "A3S_POWER_NUM_THREAD", default=0)),
            noprune=env_flag(env, "OLLAMA_NOPRUNE"),
            origins=origins,
            debug=env_flag(env, "OLLAMA_DEBUG"),
            flash_attention=env_flag(env, "OLLAMA_FLASH_ATTENTION")
            if env_value(env, "OLLAMA_FLASH_ATTENTION")
            else None,
            kv_cache_type=_kv_cache_type(env),
            cache_ram_mib=max(0, _int(env, "A3S_POWER_CACHE_RAM", default=8192)),
            draft_max=min(64, max(0, _int(env, "A3S_POWER_SPECULATIVE", default=0))),
            grammar_timeout=float(max(1, _int(env, "A3S_POWER_GRAMMAR_TIMEOUT", default=10))),
            api_keys=tuple(k.strip() for k in env_value(env, "A3S_POWER_API_KEYS").split(",") if k.strip()),
            rpc_servers=_rpc_servers(env),
            image_urls=env_flag(env, "A3S_POWER_IMAGE_URLS"),
            image_url_timeout=float(_int(env, "A3S_POWER_IMAGE_URL_TIMEOUT", default=10) or 10),
            image_url_max_bytes=max(1, _int(env, "A3S_POWER_IMAGE_URL_MAX_BYTES", default=20 * 1024 * 1024)),
            image_url_allow_private=env_flag(env, "A3S_POWER_IMAGE_URLS_ALLOW_PRIVATE"),
        )


def _rpc_servers(env: Mapping[str, str]) -> tuple[str, ...]:
    """A3S_POWER_RPC: comma-separated host:port list; a bad entry is a startup error naming it."""
    from a3s_power.runtime.rpc import parse_endpoints

    return parse_endpoints(env_value(env, "A3S_POWER_RPC"))
