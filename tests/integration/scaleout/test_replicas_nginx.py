"""Replicas sharing one registry: a model pushed once to Debian's docker-registry, pulled by two
`serve` replicas (each with its own store) and chatted with through nginx, configured from the
documented docs/deploy/nginx-a3s-power.conf (session affinity on X-Session-Id)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, server_settings

from _scaleout_helpers import Nginx
from _store_helpers import DockerRegistry, collect
from a3s_power.registry import RegistryOptions, push_model
from a3s_power.store.store import ModelStore

pytestmark = pytest.mark.timeout(300)
CHAT_OPTIONS = {"temperature": 0, "num_predict": 8, "seed": 1}


def _chat(url: str, model: str, session: str, messages: list[dict[str, str]]) -> httpx.Response:
    body = {"model": model, "messages": messages, "stream": False, "options": CHAT_OPTIONS}
    return httpx.post(url + "/api/chat", json=body, headers={"X-Session-Id": session}, timeout=300)


def test_two_replicas_pull_one_registry_and_chat_through_nginx(
    docker_registry: DockerRegistry, tmp_path: Path, smollm2_path: Path
) -> None:
    name = f"127.0.0.1:{docker_registry.port}/library/smol:135m"
    publisher = ModelStore(tmp_path / "publisher", env={})
    add_gguf_model(publisher, name, smollm2_path, {"stop": ["<|im_end|>"]})
    events = collect(push_model(publisher, name, insecure=True, options=RegistryOptions(progress_interval=1)))
    assert events[-1] == {"status": "success"}

    replicas = [
        LiveServer(server_settings(tmp_path / f"replica{i}" / "models", num_parallel=2, num_thread=1))
        for i in range(2)
    ]
    nginx = None
    try:
        for replica in replicas:  # a pull through each replica, from the one registry
            pulled = httpx.post(
                replica.url + "/api/pull",
                json={"model": name, "insecure": True, "stream": False},
                timeout=300,
            )
            assert pulled.status_code == 200 and pulled.json() == {"status": "success"}, pulled.text
            tags = [m["name"] for m in httpx.get(replica.url + "/api/tags").json()["models"]]
            assert tags == [name]
        addresses = [replica.url.removeprefix("http://") for replica in replicas]
        nginx = Nginx(tmp_path / "nginx", addresses)

        # sessions spread over both replicas, and each session's later turns stay on its replica
        first: dict[str, str] = {}
        for i in range(12):
            session = f"session-{i}"
            resp = _chat(nginx.url, name, session, [{"role": "user", "content": f"Say hello to person {i}."}])
            assert resp.status_code == 200, resp.text
            assert resp.json()["message"]["role"] == "assistant" and resp.json()["done"] is True
            first[session] = resp.headers["X-A3S-Upstream"]
        assert set(first.values()) == set(addresses)
        for session in list(first)[:4]:
            i = session.rsplit("-", 1)[1]
            turns = [
                {"role": "user", "content": f"Say hello to person {i}."},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "And goodbye?"},
            ]
            resp = _chat(nginx.url, name, session, turns)
            assert resp.status_code == 200 and resp.headers["X-A3S-Upstream"] == first[session]

        # streaming passes through the balancer chunk by chunk (proxy_buffering off)
        body = {"model": name, "messages": [{"role": "user", "content": "Count to five."}], "stream": True,
                "options": CHAT_OPTIONS}  # fmt: skip
        with httpx.stream("POST", nginx.url + "/api/chat", json=body, headers={"X-Session-Id": "s"}) as resp:
            chunks = [json.loads(line) for line in resp.iter_lines() if line]
        assert len(chunks) >= 2 and chunks[-1]["done"] is True

        # a pull through the balancer lands on one replica (already there: the manifest is rechecked)
        pulled = httpx.post(nginx.url + "/api/pull", json={"model": name, "insecure": True, "stream": False},
                            timeout=300)  # fmt: skip
        assert pulled.status_code == 200 and pulled.json() == {"status": "success"}
    finally:
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            replica.stop()
