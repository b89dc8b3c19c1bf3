"""The OpenAPI document at /openapi.json describes every route's real request body, and schemathesis,
fuzzing every operation from it against a live server, finds no server error (5xx) and no crash.

Bounded: A3S_POWER_FUZZ_EXAMPLES examples per operation (default 10: about 1.5 min on a busy 2-core
machine; 25 took 4 min there). Pull and push are fuzzed against an unreachable registry (no network)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from live_server import LiveServer, add_gguf_model, server_settings
from schemathesis.checks import not_a_server_error

from a3s_power.api.openapi import BINARY_BODIES, REQUEST_BODIES

pytestmark = pytest.mark.timeout(300)
MODEL = "smollm2:135m"
EXAMPLES = int(os.environ.get("A3S_POWER_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[LiveServer]:
    old = {k: os.environ.get(k) for k in ("A3S_POWER_REGISTRY_ENDPOINTS", "A3S_POWER_OFFLINE_FALLBACK")}
    # every registry host resolves to a closed port: pulls and pushes fail fast, nothing leaves the machine
    os.environ["A3S_POWER_REGISTRY_ENDPOINTS"] = "registry.ollama.ai=http://127.0.0.1:9"
    os.environ["A3S_POWER_OFFLINE_FALLBACK"] = "0"
    live = LiveServer(server_settings(tmp_path_factory.mktemp("fuzz") / "models", num_parallel=2))
    add_gguf_model(live.store, MODEL, smollm2_path, {"stop": ["<|im_end|>"]})
    yield live
    live.stop()
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def api_schema(fuzzed: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")


def test_the_document_describes_every_route_and_body(fuzzed: LiveServer) -> None:
    doc = httpx.get(fuzzed.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for route in fuzzed.app.routes:
        path = getattr(route, "path_format", route.path)
        if path == "/openapi.json":
            continue
        for method in route.methods - {"OPTIONS"}:
            assert method.lower() in doc["paths"][path], (method, path)
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                assert (method, path) in REQUEST_BODIES or (method, path) in BINARY_BODIES, (method, path)
                assert "requestBody" in doc["paths"][path][method.lower()], (method, path)
    generate = doc["components"]["schemas"]["GenerateRequest"]["properties"]
    assert {"model", "prompt", "options", "format", "keep_alive", "stream"} <= set(generate)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_operation_answers_a_server_error(case: schemathesis.Case, fuzzed: LiveServer) -> None:
    if case.body is not None and isinstance(case.body, dict) and case.path in ("/api/generate", "/api/chat"):
        options = case.body.get("options")
        if isinstance(options, dict) and isinstance(options.get("num_predict"), int):
            options["num_predict"] = min(options["num_predict"], 8)  # bounded work, the same checks
    case.call_and_validate(base_url=fuzzed.url, checks=[not_a_server_error], timeout=60)
    assert httpx.get(fuzzed.url + "/", timeout=10).text == "Ollama is running"
