"""OLLAMA_KV_CACHE_TYPE / OLLAMA_FLASH_ATTENTION reach the engine: a quantized KV cache serves with
flash attention, and without it the request gets a clear error instead of a failed context."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, server_settings

pytestmark = pytest.mark.timeout(180)
BODY = {"model": "smol", "prompt": "Hello", "stream": False, "options": {"temperature": 0, "num_predict": 6}}


@pytest.mark.parametrize(("flash", "status"), [(True, 200), (False, 500)])
def test_quantized_kv_cache(tmp_path: Path, smollm2_path: Path, flash: bool, status: int) -> None:
    live = LiveServer(server_settings(tmp_path / "models", kv_cache_type="q8_0", flash_attention=flash))
    try:
        add_gguf_model(live.store, "smol", smollm2_path)
        reply = httpx.post(live.url + "/api/generate", json=BODY, timeout=120)
        assert reply.status_code == status, reply.text
        if flash:
            assert reply.json()["eval_count"] == 6 and reply.json()["response"]
        else:
            assert reply.json() == {"error": "a quantized KV cache (q8_0) needs flash attention"}
    finally:
        live.stop()
