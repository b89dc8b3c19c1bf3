"""Prometheus metrics, one private registry per server (no global state, no clashes in tests).

Recorded where the facts are: generations report tokens, time to first token, inter-token
latency and end-to-end time once per request (`observe_generation`); the scheduler's and engines'
live state (loaded models, running / queued requests, slots, prompt sharing, the host-RAM prompt
cache, speculative drafts) is read at scrape time by a collector;
HTTP requests are counted by route and status.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "a3s_power"
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_ITL = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)

# engine counters read at scrape time (they restart at 0 when a model is loaded again, which
# Prometheus reads as a counter reset): (name, help, where in engine.stats())
_ENGINE_COUNTERS = (
    ("prompt_tokens_evaluated", "Prompt tokens run through the model (not reused)", ("prompt_evaluated",)),
    ("prompt_tokens_shared", "Prompt tokens attached from another slot's cells", ("prompt_shared",)),
    ("prompt_tokens_restored", "Prompt tokens restored from the host-RAM prompt cache", ("prompt_restored",)),
    ("prompt_cache_hits", "Host-RAM prompt cache restores", ("prompt_cache", "hits")),
    ("prompt_cache_misses", "Prompts the host-RAM prompt cache missed", ("prompt_cache", "misses")),
    ("prompt_cache_saves", "Slot states saved into the host-RAM prompt cache", ("prompt_cache", "saves")),
    ("prompt_cache_evictions", "Host-RAM prompt cache entries evicted (LRU)", ("prompt_cache", "evictions")),
    ("draft_tokens", "Speculative tokens proposed", ("draft_tokens",)),
    ("draft_tokens_accepted", "Speculative tokens accepted", ("draft_accepted",)),
    ("draft_model_decodes", "Decode calls of the draft model", ("draft_decodes",)),
)
_ENGINE_GAUGES = (
    ("prompt_cache_bytes", "Bytes held by the host-RAM prompt cache", ("prompt_cache", "bytes")),
    ("prompt_cache_entries", "Slot states held by the host-RAM prompt cache", ("prompt_cache", "entries")),
    ("prompt_cache_limit_bytes", "Host-RAM prompt cache bound", ("prompt_cache", "limit_bytes")),
)


def _stat(stats: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = stats
    for key in path:
        value = value.get(key, 0) if isinstance(value, dict) else 0
    return float(value)


class _SchedulerCollector(Collector):
    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        runners = self.scheduler.loaded()
        loaded = GaugeMetricFamily(f"{PREFIX}_loaded_models", "Models loaded in memory")
        loaded.add_metric([], len(runners))
        yield loaded
        running = GaugeMetricFamily(f"{PREFIX}_requests_running", "Requests in a slot", labels=["model"])
        waiting = GaugeMetricFamily(
            f"{PREFIX}_requests_waiting", "Requests queued for a slot", labels=["model"]
        )
        slots = GaugeMetricFamily(f"{PREFIX}_slots", "Parallel slots of a loaded model", labels=["model"])
        counters = [CounterMetricFamily(f"{PREFIX}_{n}", h, labels=["model"]) for n, h, _ in _ENGINE_COUNTERS]
        gauges = [GaugeMetricFamily(f"{PREFIX}_{n}", h, labels=["model"]) for n, h, _ in _ENGINE_GAUGES]
        for runner in runners:
            stats = runner.loaded.engine.stats()
            running.add_metric([runner.key], stats["n_active"])
            waiting.add_metric([runner.key], stats["n_queued"])
            slots.add_metric([runner.key], stats["n_slots"])
            for family, (_, _, path) in zip(counters, _ENGINE_COUNTERS, strict=True):
                family.add_metric([runner.key], _stat(stats, path))
            for gauge, (_, _, path) in zip(gauges, _ENGINE_GAUGES, strict=True):
                gauge.add_metric([runner.key], _stat(stats, path))
        yield from (running, waiting, slots, *counters, *gauges)
        pending = GaugeMetricFamily(f"{PREFIX}_scheduler_pending", "Requests waiting for a model to load")
        pending.add_metric([], self.scheduler.pending)
        yield pending


class Metrics:
    def __init__(self, scheduler: Any | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests", ["route", "status"], registry=r
        )
        self.prompt_tokens = Counter(
            f"{PREFIX}_prompt_tokens", "Prompt tokens (reused ones included)", ["model"], registry=r
        )
        self.cached_tokens = Counter(
            f"{PREFIX}_prompt_tokens_cached", "Prompt tokens reused from the KV cache", ["model"], registry=r
        )
        self.generated_tokens = Counter(
            f"{PREFIX}_generation_tokens", "Generated tokens", ["model"], registry=r
        )
        self.requests = Counter(
            f"{PREFIX}_generation_requests", "Finished generations", ["model", "reason"], registry=r
        )
        self.ttft = Histogram(
            f"{PREFIX}_time_to_first_token_seconds",
            "Request start to first token",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.itl = Histogram(
            f"{PREFIX}_inter_token_latency_seconds",
            "Mean gap between generated tokens",
            ["model"],
            buckets=_ITL,
            registry=r,
        )
        self.e2e = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Request start to last token",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.image_encode = Histogram(
            f"{PREFIX}_image_encode_seconds",
            "Image encode + decode into the KV cache, per request with images evaluated",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.image_tokens = Counter(
            f"{PREFIX}_prompt_image_tokens", "Prompt positions taken by images", ["model"], registry=r
        )
        if scheduler is not None:
            r.register(_SchedulerCollector(scheduler))

    def observe_generation(
        self,
        model: str,
        *,
        prompt: int,
        cached: int,
        generated: int,
        reason: str,
        ttft: float | None,
        total: float,
        decode: float,
        image_tokens: int = 0,
        image_encode: float | None = None,
    ) -> None:
        self.prompt_tokens.labels(model).inc(prompt)
        self.cached_tokens.labels(model).inc(cached)
        self.generated_tokens.labels(model).inc(generated)
        self.requests.labels(model, reason).inc()
        if ttft is not None:
            self.ttft.labels(model).observe(ttft)
        if generated > 1:
            self.itl.labels(model).observe(decode / (generated - 1))
        self.e2e.labels(model).observe(total)
        if image_tokens:
            self.image_tokens.labels(model).inc(image_tokens)
        if image_encode is not None:
            self.image_encode.labels(model).observe(image_encode)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def http_metrics_middleware(metrics: Metrics) -> Any:
    """ASGI middleware factory counting requests by route template (never the raw path: unbounded
    label values) and response status."""

    def factory(app: Any) -> Any:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = {"code": 500}

            async def capture(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                handler = scope.get("route_handler")
                route = next(iter(sorted(handler.paths)), "unmatched") if handler is not None else "unmatched"
                metrics.http_requests.labels(route, str(status["code"])).inc()

        return middleware

    return factory
