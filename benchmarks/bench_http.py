#!/usr/bin/env python3
"""The whole server, over HTTP: `a3s-power serve` vs llama.cpp's `llama-server`, same model, threads,
context per slot, slots and batch, both through the OpenAI-compatible `POST /v1/chat/completions`
with streaming (what most clients use), so the Python front (Litestar, scheduler, chat template,
reply parsing, SSE) is inside the measurement.

For 1, 4 and 8 concurrent streams (each server started with that many slots): N distinct chats
(~128-token user message, unique leading nonce), `max_tokens` 128, greedy, `ignore_eos`;
aggregate tok/s = completion tokens / wall time, TTFT p50/p95 = request sent → first content
delta. Reps alternate between the servers (order flipped each rep) after a CPU-idle wait (the
guard of bench_engine.py). Writes benchmarks/results/<timestamp>-http-<model>.json and prints a
markdown table.

    python benchmarks/bench_http.py --model smollm2:135m [--threads 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _servers import HOST, ServerProcess, free_port, llama_server_cmd
from bench_engine import GUARD, RESULTS, build_tools, med, pct, prose, resolve_model


class OpenAIServer(ServerProcess):
    """A server process speaking OpenAI's chat completions on 127.0.0.1."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log: Path) -> None:
        super().__init__(name, cmd, port, log, env=env)

    async def chat(self, model: str, text: str, max_tokens: int) -> tuple[float, float, int]:
        """(TTFT s, wall s, completion tokens) of one streamed chat completion."""
        body = {
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
        }
        t0 = time.perf_counter()
        ttft = 0.0
        tokens = 0
        async with self.client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                for choice in event.get("choices") or []:
                    if not ttft and (choice.get("delta") or {}).get("content"):
                        ttft = time.perf_counter() - t0
                if event.get("usage"):
                    tokens = int(event["usage"]["completion_tokens"])
        return ttft, time.perf_counter() - t0, tokens


def start_ours(
    gguf: Path, store_root: Path, threads: int, num_ctx: int, parallel: int, log: Path
) -> OpenAIServer:
    port = free_port()
    env = {
        **os.environ,
        "OLLAMA_HOST": f"{HOST}:{port}",
        "OLLAMA_MODELS": str(store_root),
        "OLLAMA_NUM_PARALLEL": str(parallel),
        "OLLAMA_CONTEXT_LENGTH": str(num_ctx),
        "A3S_POWER_NUM_THREAD": str(threads),
        "OLLAMA_KEEP_ALIVE": "-1",
    }
    return OpenAIServer("a3s-power", [sys.executable, "-m", "a3s_power", "serve"], env, port, log)


def start_llama_server(
    exe: Path,
    gguf: Path,
    threads: int,
    num_ctx: int,
    parallel: int,
    log: Path,
    extra: list[str] | None = None,
) -> OpenAIServer:
    port = free_port()
    cmd = llama_server_cmd(exe, gguf, threads, num_ctx, parallel, port, flags=("--jinja",), extra=extra)
    return OpenAIServer("llama-server", cmd, dict(os.environ), port, log)


def make_store(gguf: Path, root: Path, name: str) -> None:
    from a3s_power.store.create import CreateRequest, create_events
    from a3s_power.store.store import ModelStore

    store = ModelStore(root, env={})
    digest = store.add_blob_file(gguf).digest
    for _ in create_events(store, CreateRequest(model=name, files={gguf.name: digest})):
        pass


async def measure(args: argparse.Namespace, gguf: Path, exe: Path, log: Path) -> dict[str, Any]:
    store_root = Path(tempfile.mkdtemp(prefix="bench-http-")) / "models"
    make_store(gguf, store_root, "bench")
    results: dict[str, Any] = {}
    counter = 0
    for parallel in args.streams:
        servers = [
            start_ours(gguf, store_root, args.threads, args.num_ctx, parallel, log),
            start_llama_server(exe, gguf, args.threads, args.num_ctx, parallel, log),
        ]
        try:
            await servers[0].wait_ready("/")
            await servers[1].wait_ready("/health")
            for server in servers:  # load + warm up
                await server.chat("bench", "Hello.", 4)
            per: dict[str, dict[str, list[float]]] = {s.name: {"agg": [], "ttft": []} for s in servers}
            for rep in range(args.reps):
                for server in servers[:: 1 if rep % 2 == 0 else -1]:
                    counter += 1
                    texts = [
                        f"{counter}-{i} " + prose(f"{counter}-{i}", args.prompt_words)
                        for i in range(parallel)
                    ]

                    async def streams(
                        server: OpenAIServer = server, texts: list[str] = texts
                    ) -> tuple[Any, float]:
                        t0 = time.perf_counter()
                        samples = await asyncio.gather(
                            *(server.chat("bench", t, args.max_tokens) for t in texts)
                        )
                        return samples, time.perf_counter() - t0

                    samples, wall = await GUARD.run(server.pids, streams)
                    per[server.name]["agg"].append(sum(s[2] for s in samples) / wall)
                    per[server.name]["ttft"].extend(s[0] * 1e3 for s in samples)
            results[str(parallel)] = {
                name: {
                    "agg_tps": med(d["agg"]),
                    "ttft_p50_ms": pct(d["ttft"], 0.5),
                    "ttft_p95_ms": pct(d["ttft"], 0.95),
                    "agg_tps_reps": d["agg"],
                    "ttft_ms_all": d["ttft"],
                }
                for name, d in per.items()
            }
            print(
                f"  {parallel} stream(s): "
                + ", ".join(
                    f"{n} {v['agg_tps']:.1f} tok/s, TTFT p50 {v['ttft_p50_ms']:.0f} ms"
                    for n, v in results[str(parallel)].items()
                ),
                flush=True,
            )
        finally:
            for server in servers:
                await server.close()
    return results


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        f"### HTTP, {doc['model']} — {doc['threads']} threads, num_ctx {doc['num_ctx']}/slot, "
        f"{doc['reps']} reps (medians), {doc['timestamp']}",
        "",
        "| streams | measurement | a3s-power serve | llama-server | ours / server |",
        "|---|---|---|---|---|",
    ]
    for n, res in doc["results"].items():
        ours, server = res["a3s-power"], res["llama-server"]
        for key, label in (
            ("agg_tps", "aggregate tok/s"),
            ("ttft_p50_ms", "TTFT p50 ms"),
            ("ttft_p95_ms", "TTFT p95 ms"),
        ):
            ratio = ours[key] / server[key] if server[key] else float("nan")
            lines.append(f"| {n} | {label} | {ours[key]:.1f} | {server[key]:.1f} | {ratio:.2f} |")
    lines += ["", f"Command: `{doc['command']}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-ctx", type=int, default=2048)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--prompt-words", type=int, default=90)  # ≈ 128 tokens
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    name, gguf = resolve_model(args.model)
    exe = build_tools() / "llama-server"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / f"{stamp}-http-{name.replace(':', '-')}-servers.log"
    results = asyncio.run(measure(args, gguf, exe, log))
    doc = {
        "model": name,
        "threads": args.threads,
        "num_ctx": args.num_ctx,
        "reps": args.reps,
        "max_tokens": args.max_tokens,
        "timestamp": stamp,
        "results": results,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "foreign_cpu_cores_during_measurements": GUARD.foreign,
        "command": "python benchmarks/bench_http.py " + " ".join(sys.argv[1:]),
    }
    out = RESULTS / f"{stamp}-http-{name.replace(':', '-')}.json"
    out.write_text(json.dumps(doc, indent=2))
    print(markdown(doc))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
