#!/usr/bin/env python3
"""Idle cost of the whole server: `/api/tags` latency with 10 models in the store, and the resident
memory with one model loaded, against llama-server holding the same model.

`a3s-power serve` runs on a temporary store holding the model under 10 names (one blob, 10
manifests); `/api/tags` is requested 200 times one after another (p50/p95 of the client-side wall
time on 127.0.0.1), each followed by an `/api/version` (the floor: client, HTTP, middleware).
Then one short chat loads the model (OLLAMA_NUM_PARALLEL=1, OLLAMA_CONTEXT_LENGTH=4096) and, after
3 s idle, the RSS of our process is compared with llama-server's (`-c 4096 --parallel 1`, same
threads) after the same request.

    python benchmarks/bench_idle.py --model smollm2:135m [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import build_tools, resolve_model  # noqa: E402
from bench_http import make_store, start_llama_server, start_ours  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(args: argparse.Namespace, gguf: Path, exe: Path | None, log: Path) -> dict[str, Any]:
    from a3s_power.store.store import ModelStore

    root = Path(tempfile.mkdtemp(prefix="bench-idle-")) / "models"
    make_store(gguf, root, "bench")
    store = ModelStore(root, env={})
    for i in range(9):
        store.copy("bench", f"bench-copy-{i}")
    out: dict[str, Any] = {}
    ours = start_ours(gguf, root, args.threads, 4096, 1, log)
    try:
        await ours.wait_ready("/api/version")
        assert len((await ours.client.get("/api/tags")).json()["models"]) == 10
        times: dict[str, list[float]] = {"tags_ms": [], "version_ms": []}
        for _ in range(200):  # alternating: the machine's noise hits both alike
            for key, path in (("tags_ms", "/api/tags"), ("version_ms", "/api/version")):
                t0 = time.perf_counter()
                r = await ours.client.get(path)
                times[key].append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
        for key, values in times.items():
            values.sort()
            out[key] = {"p50": statistics.median(values), "p95": values[int(0.95 * len(values))]}
        await ours.chat("bench", "Say hello.", 8)
        await asyncio.sleep(3)
        out["a3s_rss_mb"] = rss_mb(ours.proc.pid)
    finally:
        await ours.close()
    if exe is not None:
        server = start_llama_server(exe, gguf, args.threads, 4096, 1, log)
        try:
            await server.wait_ready("/health")
            await server.chat("bench", "Say hello.", 8)
            await asyncio.sleep(3)
            out["llama_server_rss_mb"] = rss_mb(server.proc.pid)
        finally:
            await server.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2:135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-server", action="store_true")
    args = ap.parse_args()
    name, gguf = resolve_model(args.model)
    exe = None if args.skip_server else build_tools() / "llama-server"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / f"{stamp}-idle-{name}-llama-server.log"
    res = asyncio.run(measure(args, gguf, exe, log))
    doc = {
        "model": args.model,
        "threads": args.threads,
        "timestamp": stamp,
        **res,
        "command": " ".join(["python", "benchmarks/bench_idle.py", *sys.argv[1:]]),
    }
    out = RESULTS / f"{stamp}-idle-{name}.json"
    out.write_text(json.dumps(doc, indent=1))
    a, s = res.get("a3s_rss_mb"), res.get("llama_server_rss_mb")
    print(
        f"| /api/tags p50 ms, 10 models | {res['tags_ms']['p50']:.2f} (p95 {res['tags_ms']['p95']:.2f}) | ≤2 |"  # noqa: E501
    )
    floor = res["version_ms"]
    print(f"| /api/version p50 ms (the HTTP floor) | {floor['p50']:.2f} (p95 {floor['p95']:.2f}) | |")
    if a and s:
        print(f"| idle RSS MB, one model loaded | {a:.0f} vs llama-server {s:.0f} (+{a - s:.0f}) | ≤ +80 |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
