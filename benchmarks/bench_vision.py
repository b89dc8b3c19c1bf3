#!/usr/bin/env python3
"""Images over HTTP: `a3s-power serve` vs llama.cpp's `llama-server --mmproj`, the same model pair
(SmolLM2-135M + the tiny seeded LLaVA-style projector of tests/fixtures/vlm.py, or any --model /
--mmproj pair), threads, slots and context, both through OpenAI's streaming chat completions with an
`image_url` data URL.

Measured per rep (servers alternate, order flipped each rep, after bench_engine's CPU-idle wait):
  * image TTFT: request sent → first content delta, `--images` fresh pictures each (no cache hit);
  * decode tok/s of a text stream while another stream sends two fresh pictures (the text stream's
    completion tokens / its wall time), i.e. how much image prefill stalls the other slots.
Writes benchmarks/results/<timestamp>-vision-<model>.json and prints a markdown table.

    python benchmarks/bench_vision.py [--threads 2] [--reps 5] [--llama-server PATH]

On a machine other work keeps busy, `--quiet-wait S --attempts 1` bounds bench_engine's guard (wait
at most S seconds for idle CPUs, measure once) and the minimum beside the median tells the engines'
cost apart from the neighbours' load; the foreign CPU use during each measurement is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_engine import GUARD, RESULTS, Guard, build_tools, med, pct, prose
from bench_http import OpenAIServer, start_llama_server, start_ours

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _image(seed: int) -> str:
    from fixtures.vlm import sample_image

    return "data:image/png;base64," + base64.b64encode(sample_image(seed, size=64)).decode()


async def image_chat(server: OpenAIServer, seed: int, max_tokens: int) -> tuple[float, float, int]:
    """(TTFT s, wall s, completion tokens) of one streamed chat with one image."""
    import httpx

    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": _image(seed)}},
            {"type": "text", "text": f"({seed}) Describe this picture."}]}],
        "stream": True, "stream_options": {"include_usage": True},
        "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
    }  # fmt: skip
    t0 = time.perf_counter()
    ttft, tokens = 0.0, 0
    async with server.client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"{server.name}: {response.status_code} {(await response.aread())[:300]!r}",
                request=response.request, response=response,
            )  # fmt: skip
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


def make_store(gguf: Path, mmproj: Path, root: Path) -> None:
    from a3s_power.store.create import CreateRequest, create_events
    from a3s_power.store.store import ModelStore

    store = ModelStore(root, env={})
    files = {gguf.name: store.add_blob_file(gguf).digest, mmproj.name: store.add_blob_file(mmproj).digest}
    for _ in create_events(store, CreateRequest(model="bench", files=files)):
        pass


async def measure(args: argparse.Namespace, gguf: Path, mmproj: Path, exe: Path, log: Path) -> dict[str, Any]:
    store_root = Path(tempfile.mkdtemp(prefix="bench-vision-")) / "models"
    make_store(gguf, mmproj, store_root)
    ours = start_ours(gguf, store_root, args.threads, args.num_ctx, 2, log)
    server = start_llama_server(
        exe, gguf, args.threads, args.num_ctx, 2, log, extra=["--mmproj", str(mmproj)]
    )
    servers = [ours, server]
    per: dict[str, dict[str, list[float]]] = {
        s.name: {"ttft": [], "mixed_tps": [], "solo_tps": []} for s in servers
    }
    foreign: dict[str, list[float]] = {s.name: [] for s in servers}
    seed = 1000  # text nonces
    fresh = itertools.count(100_000)  # picture seeds: never the same picture twice (no cache hit)
    try:
        await ours.wait_ready("/")
        await server.wait_ready("/health")
        for s in servers:  # load + warm up (text and image)
            await s.chat("bench", "Hello.", 4)
            await image_chat(s, 1, 4)
        for rep in range(args.reps):
            for s in servers[:: 1 if rep % 2 == 0 else -1]:
                n_foreign = len(GUARD.foreign)
                for _ in range(args.images):
                    seed += 1

                    async def one(s: OpenAIServer = s) -> tuple[float, float, int]:
                        return await image_chat(s, next(fresh), 8)  # a new picture, also when redone

                    ttft, _, _ = await GUARD.run(s.pids, one)
                    per[s.name]["ttft"].append(ttft * 1e3)
                text = f"{seed} " + prose(str(seed), 60)

                async def solo(s: OpenAIServer = s, text: str = text) -> tuple[float, float, int]:
                    return await s.chat("bench", text, args.max_tokens)

                _, wall, toks = await GUARD.run(s.pids, solo)
                per[s.name]["solo_tps"].append(toks / wall)
                seed += 2

                async def mixed(s: OpenAIServer = s, text: str = text + " again") -> Any:
                    stream = asyncio.create_task(s.chat("bench", text, args.max_tokens))
                    await asyncio.sleep(0.05)
                    await asyncio.gather(image_chat(s, next(fresh), 4), image_chat(s, next(fresh), 4))
                    return await stream

                _, wall, toks = await GUARD.run(s.pids, mixed)
                per[s.name]["mixed_tps"].append(toks / wall)
                foreign[s.name] += GUARD.foreign[n_foreign:]
            print(f"  rep {rep + 1}: " + ", ".join(
                f"{n} TTFT {d['ttft'][-1]:.0f} ms, text {d['mixed_tps'][-1]:.1f} tok/s beside images"
                for n, d in per.items()), flush=True)  # fmt: skip
    finally:
        for s in servers:
            await s.close()
    return {
        name: {
            "image_ttft_min_ms": min(d["ttft"]),
            "image_ttft_p50_ms": pct(d["ttft"], 0.5),
            "image_ttft_p95_ms": pct(d["ttft"], 0.95),
            "text_tps_solo": med(d["solo_tps"]),
            "text_tps_solo_max": max(d["solo_tps"]),
            "text_tps_beside_images": med(d["mixed_tps"]),
            "text_tps_beside_images_max": max(d["mixed_tps"]),
            "foreign_cpu_cores_median": med(foreign[name]),
            "raw": d,
        }
        for name, d in per.items()
    }


def markdown(doc: dict[str, Any]) -> str:
    res = doc["results"]
    ours, server = res["a3s-power"], res["llama-server"]
    lines = [
        f"### Vision over HTTP, {doc['model']} + {doc['mmproj']} — {doc['threads']} threads, 2 slots, "
        f"{doc['reps']} reps, {doc['timestamp']}",
        "",
        "| measurement | a3s-power serve | llama-server --mmproj | ours / server |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("image_ttft_min_ms", "image TTFT min ms"),
        ("image_ttft_p50_ms", "image TTFT p50 ms"),
        ("image_ttft_p95_ms", "image TTFT p95 ms"),
        ("text_tps_solo", "text stream tok/s alone, median"),
        ("text_tps_solo_max", "text stream tok/s alone, best"),
        ("text_tps_beside_images", "text stream tok/s beside 2 image requests, median"),
        ("text_tps_beside_images_max", "text stream tok/s beside 2 image requests, best"),
        ("foreign_cpu_cores_median", "other processes' CPU use during it, cores (median)"),
    ):
        ratio = f"{ours[key] / server[key]:.2f}" if server[key] and "foreign" not in key else "—"
        lines.append(f"| {label} | {ours[key]:.1f} | {server[key]:.1f} | {ratio} |")
    lines += ["", f"Command: `{doc['command']}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="text GGUF (default: bundled smollm2:135m)")
    parser.add_argument(
        "--mmproj", type=Path, default=None, help="projector GGUF (default: the test projector)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-ctx", type=int, default=2048)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--images", type=int, default=3, help="image TTFT samples per server per rep")
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="longest wait for idle CPUs, s")
    parser.add_argument("--attempts", type=int, default=3, help="measurements redone when the CPUs were busy")
    parser.add_argument("--llama-server", type=Path, default=os.environ.get("LLAMA_SERVER"))
    args = parser.parse_args()
    GUARD.attempts = args.attempts
    GUARD.wait_quiet = functools.partial(Guard.wait_quiet, timeout_s=args.quiet_wait)  # type: ignore[method-assign]
    from a3s_power.bundled import bundled_model_path

    gguf = args.model or bundled_model_path("smollm2:135m")
    if args.mmproj is None:
        from fixtures.vlm import smollm2_mmproj_gguf

        args.mmproj = smollm2_mmproj_gguf()
    exe = args.llama_server or build_tools() / "llama-server"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / f"{stamp}-vision-servers.log"
    results = asyncio.run(measure(args, gguf, args.mmproj, exe, log))
    doc = {
        "model": gguf.name,
        "mmproj": args.mmproj.name,
        "threads": args.threads,
        "num_ctx": args.num_ctx,
        "reps": args.reps,
        "timestamp": stamp,
        "results": results,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "foreign_cpu_cores_during_measurements": GUARD.foreign,
        "command": "python benchmarks/bench_vision.py " + " ".join(sys.argv[1:]),
    }
    out = RESULTS / f"{stamp}-vision.json"
    out.write_text(json.dumps(doc, indent=2))
    print(markdown(doc))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
