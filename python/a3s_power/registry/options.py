"""Registry client settings: endpoints per host, credentials, transfer tuning. All overridable from env."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from a3s_power.store.names import ModelName

HF_HOSTS = ("hf.co", "huggingface.co")
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
MB = 1 << 20


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    insecure: bool = False
    username: str = ""
    password: str = ""
    # host (lowercase, with port) → base URL, e.g. {"registry.ollama.ai": "http://127.0.0.1:5000"}
    endpoints: Mapping[str, str] = field(default_factory=dict)
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    # Ollama: parts of size/16 clamped to [100 MB, 1000 MB], at most 16 at a time.
    min_part_size: int = 100 * MB
    max_part_size: int = 1000 * MB
    max_parallel: int = 16
    max_retries: int = 6
    # A part that receives no byte for stall_timeout s reconnects; stalls do not count as retries.
    stall_timeout: float = 30.0
    max_stall_retries: int = 10
    retry_base_delay: float = 1.0
    push_chunk_size: int = 100 * MB
    progress_interval: float = 0.06
    checkpoint_interval: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    user_agent: str = "a3s-power/0.1.0"
    offline_fallback: bool = True

    def with_insecure(self, insecure: bool) -> RegistryOptions:
        return replace(self, insecure=insecure or self.insecure)

    def base_url(self, name: ModelName) -> str:
        """Scheme + host the registry API lives at for this name."""
        host = name.host.lower()
        if host in self.endpoints:
            return self.endpoints[host].rstrip("/")
        if host in HF_HOSTS:
            return self.hf_endpoint.rstrip("/")
        scheme = "http" if self.insecure else name.scheme
        return f"{scheme}://{name.host}"


def options_from_env(env: Mapping[str, str] | None = None, **overrides: object) -> RegistryOptions:
    """`A3S_POWER_REGISTRY_ENDPOINTS=host=url,host2=url2`, `A3S_POWER_HF_ENDPOINT` or `HF_ENDPOINT`,
    `A3S_POWER_REGISTRY_USERNAME`/`_PASSWORD`, `A3S_POWER_OFFLINE_FALLBACK=0` to never use built-ins."""
    env = os.environ if env is None else env
    endpoints: dict[str, str] = {}
    for item in env.get("A3S_POWER_REGISTRY_ENDPOINTS", "").split(","):
        host, sep, url = item.strip().partition("=")
        if sep and host and url:
            endpoints[host.strip().lower()] = url.strip()
    hf = env.get("A3S_POWER_HF_ENDPOINT") or env.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT
    fallback = env.get("A3S_POWER_OFFLINE_FALLBACK", "1").strip().lower() not in ("0", "false", "no")
    options = RegistryOptions(
        endpoints=endpoints,
        hf_endpoint=hf,
        username=env.get("A3S_POWER_REGISTRY_USERNAME", ""),
        password=env.get("A3S_POWER_REGISTRY_PASSWORD", ""),
        offline_fallback=fallback,
    )
    return replace(options, **overrides)  # type: ignore[arg-type]
