"""Two RPC worker "hosts" in Linux network namespaces made by the test: each namespace has one end
of a veth pair with a private address that exists only inside it, and runs `a3s-power rpc-server`
bound to that address. `serve` in the root namespace splits SmolLM2 across itself and both hosts:
the same greedy output as a local load; killing one host's worker mid-stream is a clean error and
the server keeps serving local models. Skipped, with the reason, where namespaces cannot be made."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, server_settings

from _scaleout_helpers import GENERATE_OPTIONS

PROMPTS = ["The capital of France is", "Once upon a time, there was a little"]
STOP = {"stop": ["<|im_end|>"]}
PORT = 50052


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@dataclass
class Host:
    netns: str
    address: str  # the worker's address, only inside `netns`


def _make_hosts(n: int) -> list[Host]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed")
    tag = f"{os.getpid() % 10000}{random.randint(0, 99)}"
    subnet = random.randint(16, 250)  # 10.<subnet>.<i>.0/30: private, unlikely to be in use here
    hosts: list[Host] = []
    for i in range(n):
        netns, host_if, ns_if = f"a3s-{tag}-{i}", f"a3s{tag}h{i}", f"a3s{tag}n{i}"
        made = _ip("netns", "add", netns)
        if made.returncode != 0:
            _remove(hosts)
            pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
        hosts.append(Host(netns, f"10.{subnet}.{i}.2"))
        steps = [
            ("link", "add", host_if, "type", "veth", "peer", "name", ns_if),
            ("link", "set", ns_if, "netns", netns),
            ("addr", "add", f"10.{subnet}.{i}.1/30", "dev", host_if),
            ("link", "set", host_if, "up"),
            ("-n", netns, "addr", "add", f"10.{subnet}.{i}.2/30", "dev", ns_if),
            ("-n", netns, "link", "set", ns_if, "up"),
            ("-n", netns, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                _remove(hosts)
                pytest.skip(f"cannot set up a veth pair (ip {' '.join(step)}): {done.stderr.strip()}")
    return hosts


def _remove(hosts: list[Host]) -> None:
    for host in hosts:
        _ip("netns", "del", host.netns)  # removes its veth end, and so the pair


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    made = _make_hosts(2)
    yield made
    _remove(made)


def test_split_across_namespaced_hosts_then_kill_one(
    tmp_path: Path, smollm2_path: Path, start_worker, hosts: list[Host]
) -> None:
    root_addresses = _ip("-o", "addr").stdout
    for host in hosts:
        assert f" {host.address}/" not in root_addresses  # the worker's address is not on this side
    workers = [start_worker(host=h.address, port=PORT, netns=h.netns) for h in hosts]
    for worker in workers:
        assert "no authentication" in worker.log_path.read_text()  # a non-loopback bind warns
    settings = replace(
        server_settings(tmp_path / "models"),
        rpc_servers=tuple(w.endpoint for w in workers),
        num_parallel=1,
        num_thread=1,
    )
    live = LiveServer(settings)
    try:
        add_gguf_model(live.store, "smol-split", smollm2_path, {**STOP, "tensor_split": "1,1,1"})
        add_gguf_model(live.store, "smol-local", smollm2_path, {**STOP, "tensor_split": "1"})
        for prompt in PROMPTS:
            outputs = {}
            for model in ("smol-local", "smol-split"):
                body = {"model": model, "prompt": prompt, "stream": False, "options": GENERATE_OPTIONS}
                resp = httpx.post(live.url + "/api/generate", json=body, timeout=300)
                assert resp.status_code == 200, resp.text
                outputs[model] = resp.json()["response"]
            assert outputs["smol-split"] == outputs["smol-local"] and outputs["smol-split"].strip()
        ps = httpx.get(live.url + "/api/ps").json()["models"]
        split = next(m for m in ps if m["name"] == "smol-split:latest")
        endpoints = sorted(d["endpoint"] for d in split["devices"] if d["name"].startswith("RPC"))
        assert endpoints == sorted(w.endpoint for w in workers)

        body = {"model": "smol-split", "prompt": "Tell me a very long story about a dragon.", "stream": True,
                "options": {"temperature": 0, "num_predict": 2000, "stop": []}}  # fmt: skip
        chunks = []
        with httpx.stream("POST", live.url + "/api/generate", json=body, timeout=120) as resp:
            for line in resp.iter_lines():
                if line:
                    chunks.append(json.loads(line))
                    if len(chunks) == 5:
                        workers[1].kill()
        error = str(chunks[-1].get("error"))
        assert f"the connection to RPC worker {workers[1].endpoint} was lost" in error, chunks[-1]
        assert workers[0].endpoint not in error
        local = httpx.post(
            live.url + "/api/generate",
            json={"model": "smol-local", "prompt": "Hi", "stream": False, "options": {"num_predict": 4}},
            timeout=120,
        )
        assert local.status_code == 200 and local.json()["eval_count"] == 4
        assert workers[0].proc.poll() is None
    finally:
        live.stop()
