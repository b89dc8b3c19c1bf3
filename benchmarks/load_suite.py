#!/usr/bin/env python3
"""Load suite: many concurrent streaming clients against a real `a3s-power serve`, loopback only.

Starts `serve` on 127.0.0.1 (a free port, a temporary store holding SmolLM2-135M from its PyPI
package) with OLLAMA_MAX_QUEUE set, then runs `--clients` clients for `--duration` seconds, each
alternating `/api/chat` and `/v1/chat/completions` streams. It reports completed requests, the
designed 503s (Ollama's exact text, in each API's envelope), every other error, truncated streams,
TTFT p50/p95/p99, the server's RSS sampled over time with its trend (after warm-up), the bytes its
host-RAM prompt cache holds (bounded by `--cache-ram`) and RSS less them, and whether
running/queued requests and the scheduler are back to idle at the end.

    python benchmarks/load_suite.py --duration 600            # the issue's 10 minutes
    python benchmarks/load_suite.py --duration 180 --out benchmarks/results/load-180s.json

Bounded: every client stops at the deadline, every request has a timeout, and the server is
stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BUSY = "server busy, please try again.  maximum pending requests exceeded"
MODEL = "smollm2:135m"


@dataclass
class Tally:
    completed: int = 0
    completed_by_api: dict[str, int] = field(default_factory=lambda: {"ollama": 0, "openai": 0})
    busy_503: int = 0
    busy_503_by_api: dict[str, int] = field(default_factory=lambda: {"ollama": 0, "openai": 0})
    busy_wrong_text: int = 0
    other_errors: list[str] = field(default_factory=list)
    truncated: int = 0
    ttft_s: list[float] = field(default_factory=list)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    cache_samples: list[tuple[float, int]] = field(default_factory=list)  # prompt cache bytes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_store(root: Path) -> None:
    from a3s_power.bundled import bundled_model_path
    from a3s_power.store.create import CreateRequest, create_events
    from a3s_power.store.store import ModelStore

    store = ModelStore(root, env={})
    gguf = bundled_model_path(MODEL)
    digest = store.add_blob_file(gguf).digest
    request = CreateRequest(model=MODEL, files={gguf.name: digest}, parameters={"stop": ["<|im_end|>"]})
    for _ in create_events(store, request):
        pass


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def slope_mb_per_min(samples: list[tuple[float, int]]) -> float | None:
    if len(samples) < 3:
        return None
    xs = [t / 60 for t, _ in samples]
    ys = [r / 2**20 for _, r in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


async def one_request(client: httpx.AsyncClient, api: str, n: int, max_tokens: int, tally: Tally) -> bool:
    """One streamed request, tallied; True if it was refused with the designed 503."""
    content = f"Request {n}: write one sentence about the number {n}."
    if api == "ollama":
        path = "/api/chat"
        body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": content}],
                                "stream": True, "options": {"num_predict": max_tokens}}  # fmt: skip
    else:
        path = "/v1/chat/completions"
        body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": True,
                "max_tokens": max_tokens}  # fmt: skip
    started = time.perf_counter()
    first: float | None = None
    finished = False
    try:
        async with client.stream("POST", path, json=body) as response:
            if response.status_code == 503:
                raw = await response.aread()
                doc = json.loads(raw)
                text = doc["error"] if api == "ollama" else doc["error"]["message"]
                if text == BUSY:
                    tally.busy_503 += 1
                    tally.busy_503_by_api[api] += 1
                    return True
                tally.busy_wrong_text += 1
                tally.other_errors.append(f"503 with another text: {raw[:200]!r}")
                return False
            if response.status_code != 200:
                tally.other_errors.append(
                    f"{response.status_code} {path}: {(await response.aread())[:200]!r}"
                )
                return False
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                if api == "ollama":
                    event = json.loads(line)
                    if "error" in event:
                        tally.other_errors.append(f"in-stream error {path}: {event['error']}")
                        return False
                    if first is None and event.get("message", {}).get("content"):
                        first = time.perf_counter()
                    if event.get("done"):
                        finished = True
                else:
                    data = line.removeprefix("data: ")
                    if data == "[DONE]":
                        finished = True
                        continue
                    event = json.loads(data)
                    if "error" in event:
                        tally.other_errors.append(f"in-stream error {path}: {event['error']}")
                        return False
                    delta = (event.get("choices") or [{}])[0].get("delta", {})
                    if first is None and delta.get("content"):
                        first = time.perf_counter()
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        tally.other_errors.append(f"{type(exc).__name__} {path}: {exc}")
        return False
    if not finished:
        tally.truncated += 1
        return False
    tally.completed += 1
    tally.completed_by_api[api] += 1
    if first is not None:
        tally.ttft_s.append(first - started)
    return False


async def client_loop(url: str, index: int, deadline: float, max_tokens: int, tally: Tally) -> None:
    n = 0
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(300, connect=10)) as client:
        while time.monotonic() < deadline:
            api = "ollama" if (index + n) % 2 == 0 else "openai"
            refused = await one_request(client, api, index * 100_000 + n, max_tokens, tally)
            n += 1
            if refused:  # a refused client backs off before retrying, as real ones do
                await asyncio.sleep(0.25)


async def prompt_cache_bytes(client: httpx.AsyncClient) -> int:
    """Bytes the server's host-RAM prompt cache holds (its bounded, designed growth), from /metrics."""
    try:
        text = (await client.get("/metrics")).text
    except httpx.HTTPError:
        return 0
    name = "a3s_power_prompt_cache_bytes{"
    return int(sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(name)))


async def sample_rss(url: str, pid: int, started: float, deadline: float, tally: Tally, every: float) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            rss, cache = rss_bytes(pid), await prompt_cache_bytes(client)
            tally.rss_samples.append((time.monotonic() - started, rss))
            tally.cache_samples.append((time.monotonic() - started, cache))
            await asyncio.sleep(every)


async def idle_state(url: str) -> dict[str, Any]:
    """Running/queued requests from /metrics, after waiting up to 30 s for them to drain."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + 30
        while True:
            text = (await client.get("/metrics")).text
            gauges = {}
            for line in text.splitlines():
                for name in ("a3s_power_requests_running", "a3s_power_requests_waiting",
                             "a3s_power_scheduler_pending", "a3s_power_slots"):  # fmt: skip
                    if line.startswith(name):
                        gauges[name] = gauges.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
            busy = sum(v for k, v in gauges.items() if k != "a3s_power_slots")
            if busy == 0 or time.monotonic() > deadline:
                return {"gauges": gauges, "idle": busy == 0, "ps": (await client.get("/api/ps")).json()}
            await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="a3s-load-"))
    root = workdir / "models"
    make_store(root)
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(root),
           "OLLAMA_MAX_QUEUE": str(args.queue), "OLLAMA_NUM_PARALLEL": str(args.num_parallel),
           "OLLAMA_CONTEXT_LENGTH": str(args.num_ctx), "OLLAMA_KEEP_ALIVE": "-1",
           "A3S_POWER_NUM_THREAD": str(args.num_thread)}  # fmt: skip
    if args.cache_ram is not None:
        env["A3S_POWER_CACHE_RAM"] = str(args.cache_ram)
    log = (workdir / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "a3s_power", "serve"], env=env, stdout=log, stderr=log)
    tally = Tally()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            for _ in range(600):
                try:
                    if (await client.get("/")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            warm = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False,
                    "options": {"num_predict": 2}}  # fmt: skip
            (await client.post("/api/chat", json=warm)).raise_for_status()
        started = time.monotonic()
        deadline = started + args.duration
        rss_task = asyncio.create_task(sample_rss(url, proc.pid, started, deadline, tally, args.rss_every))
        await asyncio.gather(
            *(client_loop(url, i, deadline, args.max_tokens, tally) for i in range(args.clients))
        )
        await rss_task
        elapsed = time.monotonic() - started
        end = await idle_state(url)
        end_rss = rss_bytes(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    warmup = min(60.0, args.duration / 3)
    warm_samples = [s for s in tally.rss_samples if s[0] >= warmup]
    rss_mb = [r / 2**20 for _, r in tally.rss_samples]
    # RSS less what the prompt cache holds: whatever else grows (a leak) shows here
    beside = [(t, r - c) for (t, r), (_, c) in zip(tally.rss_samples, tally.cache_samples, strict=True)]
    cache_mb = [c / 2**20 for _, c in tally.cache_samples]
    beside_trend = slope_mb_per_min([b for b in beside if b[0] >= warmup])
    return {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "settings": {
            "clients": args.clients,
            "duration_s": args.duration,
            "OLLAMA_MAX_QUEUE": args.queue,
            "OLLAMA_NUM_PARALLEL": args.num_parallel,
            "A3S_POWER_CACHE_RAM": args.cache_ram if args.cache_ram is not None else "default (8192)",
            "max_tokens": args.max_tokens,
            "num_ctx": args.num_ctx,
            "model": MODEL,
        },  # fmt: skip
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform, "load_average_at_start": load_at_start},
        "elapsed_s": round(elapsed, 1),
        "completed": tally.completed,
        "completed_by_api": tally.completed_by_api,
        "requests_per_s": round(tally.completed / elapsed, 2),
        "busy_503": tally.busy_503,
        "busy_503_by_api": tally.busy_503_by_api,
        "busy_503_wrong_text": tally.busy_wrong_text,
        "other_errors": len(tally.other_errors),
        "other_error_samples": tally.other_errors[:20],
        "truncated_streams": tally.truncated,
        "ttft_s": {
            q: (round(v, 3) if (v := percentile(tally.ttft_s, n)) is not None else None)
            for q, n in (("p50", 50), ("p95", 95), ("p99", 99))
        },  # fmt: skip
        "rss_mb": {
            "first": round(rss_mb[0], 1) if rss_mb else None,
            "max": round(max(rss_mb), 1) if rss_mb else None,
            "last": round(end_rss / 2**20, 1),
            "trend_mb_per_min_after_warmup": (
                round(s, 2) if (s := slope_mb_per_min(warm_samples)) is not None else None
            ),
            "samples": [(round(t, 1), round(r / 2**20, 1)) for t, r in tally.rss_samples],
        },
        "prompt_cache_mb": {
            "last": round(cache_mb[-1], 1) if cache_mb else None,
            "max": round(max(cache_mb), 1) if cache_mb else None,
            "samples": [(round(t, 1), round(c / 2**20, 1)) for t, c in tally.cache_samples],
        },
        "rss_less_prompt_cache_mb": {
            "first": round(beside[0][1] / 2**20, 1) if beside else None,
            "last": round(beside[-1][1] / 2**20, 1) if beside else None,
            "trend_mb_per_min_after_warmup": round(beside_trend, 2) if beside_trend is not None else None,
        },
        "end_state": end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--queue", type=int, default=32, help="OLLAMA_MAX_QUEUE (default 32)")
    parser.add_argument("--num-parallel", type=int, default=4, help="OLLAMA_NUM_PARALLEL (default 4)")
    parser.add_argument("--num-ctx", type=int, default=4096)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--num-thread", type=int, default=0, help="A3S_POWER_NUM_THREAD (0: llama.cpp's default)"
    )
    parser.add_argument(
        "--cache-ram", type=int, default=None, help="A3S_POWER_CACHE_RAM MiB (default: the server's, 8192)"
    )
    parser.add_argument("--rss-every", type=float, default=2.0, help="RSS sampling period (s)")
    parser.add_argument("--port", type=int, default=0, help="default: a free port on 127.0.0.1")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args()
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients and --duration must be positive")
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    series = ("rss_mb", "prompt_cache_mb", "other_error_samples")
    summary = {k: v for k, v in result.items() if k not in series}
    for key in ("rss_mb", "prompt_cache_mb"):
        summary[key] = {k: v for k, v in result[key].items() if k != "samples"}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
