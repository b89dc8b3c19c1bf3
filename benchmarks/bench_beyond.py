#!/usr/bin/env python3
"""Beyond llama-server: a prefix shared across concurrent users, a RAM prompt cache, speculation.

Side by side in one run, alternating rep by rep, our engine (in-process, asyncio API) against
llama.cpp's own llama-server built from the same source (benchmarks/build_llama_server.sh), same
model, threads, per-slot context, slots, batch sizes, unified KV, greedy sampling:

  * shared:   8 chats sharing a ~1.5k-token system prompt arrive together (8 slots):
              TTFT p50 and prompt tokens evaluated (ours: engine stats; server: /metrics);
  * rotate:   16 conversations x 4 turns over 4 slots (--cache-ram 8192 for the server):
              a returning turn's TTFT vs a cold prefill of the same history (cache_prompt off);
  * edit:     reproduce a ~400-token code block with one change: decode tok/s with n-gram
              speculation vs without, and vs llama-server `--spec-type ngram-simple`;
  * norep:    a task with no repetition: decode tok/s with speculation vs without.

    python benchmarks/bench_beyond.py --model smollm2:135m [--threads 2] [--reps 2] [--only shared,rotate]

Writes benchmarks/results/<timestamp>-beyond-<model>.json, a PNG, and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _servers import ServerProcess, free_port, llama_server_cmd, stream_completion  # noqa: E402
from bench_engine import build_tools, prose, resolve_model  # noqa: E402
from bench_engine import med as bench_med  # noqa: E402

from a3s_power.runtime import Chunk, Completion, GenerationOptions, LoadedModel, generate, load_model  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

CODE_LINES = [
    "def load_records(path):",
    "    records = []",
    "    with open(path) as handle:",
    "        for line in handle:",
    "            line = line.strip()",
    "            if not line or line.startswith('#'):",
    "                continue",
    "            name, price, quantity = line.split(',')",
    "            records.append({'name': name, 'price': float(price), 'quantity': int(quantity)})",
    "    return records",
    "",
    "",
    "def total_value(records):",
    "    result = 0.0",
    "    for record in records:",
    "        if record['price'] > 0 and record['quantity'] > 0:",
    "            result += record['price'] * record['quantity']",
    "    return result",
    "",
    "",
    "def cheapest(records):",
    "    best = None",
    "    for record in records:",
    "        if best is None or record['price'] < best['price']:",
    "            best = record",
    "    return best",
    "",
    "",
    "def report(records):",
    "    lines = []",
    "    for record in sorted(records, key=lambda r: r['name']):",
    "        value = record['price'] * record['quantity']",
    "        lines.append(f\"{record['name']:<20} {record['quantity']:>5} {value:>10.2f}\")",
    "    lines.append(f\"{'total':<20} {'':>5} {total_value(records):>10.2f}\")",
    "    return '\\n'.join(lines)",
]


def greedy(n_predict: int) -> dict[str, Any]:
    return {
        "n_predict": n_predict,
        "temperature": 0.0,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
        "repeat_last_n": 64,
        "seed": 42,
    }


class Ours:
    name = "a3s"

    def __init__(self, path: Path, threads: int, num_ctx: int, parallel: int, **kw: Any) -> None:
        self.loaded: LoadedModel = load_model(
            path, num_ctx=num_ctx, num_parallel=parallel, num_thread=threads, **kw
        )

    async def complete(
        self,
        tokens: list[int],
        n_predict: int,
        *,
        ignore_eos: bool = True,
        cache_prompt: bool = True,
        draft_max: int = 0,
    ) -> dict[str, Any]:
        opts = GenerationOptions(
            num_predict=n_predict,
            temperature=0.0,
            repeat_penalty=1.0,
            seed=42,
            ignore_eos=ignore_eos,
            cache_prompt=cache_prompt,
            draft_max=draft_max,
        )
        t0 = time.perf_counter()
        ttft = t_last = 0.0
        parts: list[str] = []
        done: Completion | None = None
        async for ev in generate(self.loaded, tokens, opts):
            if isinstance(ev, Chunk):
                now = time.perf_counter() - t0
                if not ttft and ev.tokens:
                    ttft = now
                t_last = now
                parts.append(ev.text)
            else:
                done = ev
        assert done is not None
        return {
            "ttft": ttft,
            "total": t_last,
            "n_gen": done.eval_count,
            "n_eval": done.prompt_eval_count,
            "n_cached": done.cached_tokens,
            "text": "".join(parts),
        }

    def prompt_evaluated(self) -> int:
        return int(self.loaded.engine.stats()["prompt_evaluated"])

    def close(self) -> None:
        self.loaded.close()


class Server(ServerProcess):
    def __init__(
        self, exe: Path, path: Path, threads: int, num_ctx: int, parallel: int, extra: list[str], log: Path
    ) -> None:
        port = free_port()
        cmd = llama_server_cmd(exe, path, threads, num_ctx, parallel, port, extra=extra)
        super().__init__("llama-server", cmd, port, log, timeout=900.0)

    async def wait_ready(self, path: str = "/health", timeout_s: float = 180.0) -> None:
        await super().wait_ready(path, timeout_s)

    async def complete(
        self,
        tokens: list[int],
        n_predict: int,
        *,
        ignore_eos: bool = True,
        cache_prompt: bool = True,
        draft_max: int = 0,
    ) -> dict[str, Any]:
        body = {
            "prompt": tokens,
            "stream": True,
            "cache_prompt": cache_prompt,
            "ignore_eos": ignore_eos,
            **greedy(n_predict),
        }
        r = await stream_completion(self.client, body)
        return {
            "ttft": r.ttft,
            "total": r.last,
            "n_gen": int(r.timings.get("predicted_n", 0)),
            "n_eval": int(r.timings.get("prompt_n", 0)),
            "n_cached": int(r.timings.get("cache_n", 0)),
            "text": r.text,
        }

    def prompt_evaluated(self) -> int:
        text = httpx.get(self.client.base_url.join("/metrics"), timeout=10).text
        m = re.search(r"^llamacpp:prompt_tokens_total (\S+)$", text, re.M)
        return int(float(m.group(1))) if m else -1


def decode_tps(r: dict[str, Any]) -> float:
    dt = r["total"] - r["ttft"]
    return (r["n_gen"] - 1) / dt if r["n_gen"] > 1 and dt > 0 else 0.0


def med(xs: list[float]) -> float:
    return bench_med(xs, empty=float("nan"))


@contextlib.asynccontextmanager
async def pair(
    path: Path,
    bin_dir: Path | None,
    log: Path,
    threads: int,
    num_ctx: int,
    parallel: int,
    server_extra: list[str],
    **ours_kw: Any,
):
    ours = Ours(path, threads, num_ctx, parallel, **ours_kw)
    server = (
        Server(bin_dir / "llama-server", path, threads, num_ctx, parallel, server_extra, log)
        if bin_dir
        else None
    )
    try:
        if server is not None:
            await server.wait_ready()
        yield ours, server
    finally:
        ours.close()
        if server is not None:
            await server.close()


def chat(loaded: LoadedModel, messages: list[dict[str, str]]) -> list[int]:
    return loaded.tokenize(loaded.render_chat(messages).prompt, True, True)


async def bench_shared(
    path: Path, bin_dir: Path | None, log: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """8 chats, one ~1.5k-token system prompt, arriving together."""
    out: dict[str, Any] = {}
    async with pair(path, bin_dir, log, args.threads, 2048, 8, []) as (ours, server):
        engines = [e for e in (ours, server) if e is not None]
        for rep in range(args.reps):
            system = f"Deployment {rep}-{time.time_ns()}. " + prose(f"sys{rep}", 1000)
            prompts = [
                chat(
                    ours.loaded,
                    [
                        {"role": "system", "content": system},
                        {"role": "user", "content": f"User {i}: " + prose(f"q{rep}{i}", 20)},
                    ],
                )
                for i in range(8)
            ]
            # the prefix the 8 share as rendered (a template may fold the system prompt into the
            # first user turn, so rendering the system message alone does not measure it)
            sys_tokens = next(
                (i for i, col in enumerate(zip(*prompts, strict=False)) if len(set(col)) > 1),
                min(len(p) for p in prompts),
            )
            for eng in engines if rep % 2 == 0 else engines[::-1]:
                before = eng.prompt_evaluated()
                res = await asyncio.gather(*(eng.complete(p, 16) for p in prompts))
                evaluated = eng.prompt_evaluated() - before
                d = out.setdefault(eng.name, {"ttft": [], "evaluated": [], "prompt_total": [], "prefix": []})
                d["ttft"] += [r["ttft"] for r in res]
                d["evaluated"].append(evaluated)
                d["prompt_total"].append(sum(len(p) for p in prompts))
                d["prefix"].append(sys_tokens)
                # new system prompt next rep for both engines (first run a throwaway for the other)
    for d in out.values():
        d["ttft_p50"] = med(d["ttft"])
        d["evaluated_med"] = med(d["evaluated"])
    return out


async def bench_rotate(
    path: Path, bin_dir: Path | None, log: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """16 conversations x 4 turns over 4 slots: returning turns vs a cold prefill of the same history."""
    out: dict[str, Any] = {}
    async with pair(path, bin_dir, log, args.threads, 4096, 4, ["--cache-ram", "8192"]) as (ours, server):
        engines = [e for e in (ours, server) if e is not None]
        for rep in range(args.reps):
            for eng in engines if rep % 2 == 0 else engines[::-1]:
                convs = [
                    [
                        {
                            "role": "system",
                            "content": f"Conversation {rep}-{c}-{eng.name}. " + prose(f"c{rep}{c}", 300),
                        }
                    ]
                    for c in range(16)
                ]
                d = out.setdefault(eng.name, {"returning_ttft": [], "cold_ttft": [], "first_ttft": []})
                for turn in range(4):
                    for c in range(16):  # one conversation at a time: slots rotate, 16 > 4
                        convs[c].append(
                            {"role": "user", "content": f"Turn {turn}: " + prose(f"u{rep}{c}{turn}", 25)}
                        )
                        tokens = chat(ours.loaded, convs[c])
                        r = await eng.complete(tokens, 24)
                        (d["returning_ttft"] if turn else d["first_ttft"]).append(r["ttft"])
                        if turn == 3 and c % 4 == 0:  # a cold prefill of the same history
                            cold = await eng.complete(tokens, 1, cache_prompt=False)
                            d["cold_ttft"].append(cold["ttft"])
                        convs[c].append({"role": "assistant", "content": r["text"]})
    for d in out.values():
        d["returning_p50"] = med(d["returning_ttft"])
        d["cold_p50"] = med(d["cold_ttft"])
    return out


def edit_prompt(loaded: LoadedModel) -> tuple[list[int], int]:
    code = "\n".join(CODE_LINES)
    ask = (
        "Here is a Python module:\n\n```python\n" + code + "\n```\n\nRewrite the whole module unchanged "
        "except that `total_value` is renamed to `sum_value`. Output only the code."
    )
    tokens = chat(loaded, [{"role": "user", "content": ask}])
    return tokens, len(loaded.tokenize(code, False, False))


def record(out: dict[str, Any], name: str, r: dict[str, Any]) -> None:
    """One speculation run's decode tok/s, length and opening text under `name`, and a progress line."""
    d = out.setdefault(name, {"tps": [], "n_gen": [], "texts": []})
    d["tps"].append(decode_tps(r))
    d["n_gen"].append(r["n_gen"])
    d["texts"].append(r["text"][:200])
    print(f"  {name}: {decode_tps(r):.1f} tok/s, {r['n_gen']} tokens", flush=True)


async def bench_spec(path: Path, bin_dir: Path | None, log: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Edit task and a no-repetition task: decode tok/s with and without n-gram speculation."""
    out: dict[str, Any] = {}
    extra = ["--spec-type", "ngram-simple", "--spec-draft-n-max", str(args.draft_max)]
    async with pair(path, bin_dir, log, args.threads, 4096, 1, extra) as (ours, server):
        edit, n_code = edit_prompt(ours.loaded)
        norep = chat(
            ours.loaded, [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
        )
        for rep in range(args.reps):
            runs: list[tuple[str, Any, list[int], int, int]] = [
                ("a3s plain", ours, edit, n_code, 0),
                ("a3s spec", ours, edit, n_code, args.draft_max),
                ("a3s norep plain", ours, norep, 128, 0),
                ("a3s norep spec", ours, norep, 128, args.draft_max),
            ]
            if server is not None:
                runs.append(("llama-server spec", server, edit, n_code, args.draft_max))
            for name, eng, tokens, n, dm in runs if rep % 2 == 0 else runs[::-1]:
                record(out, name, await eng.complete(tokens, n, ignore_eos=False, draft_max=dm))
        st = ours.loaded.engine.stats()
        out["a3s draft acceptance"] = st["draft_accepted"] / max(1, st["draft_tokens"])
    if args.draft_model != "none":  # a draft model beside the target (same vocabulary), edit task
        draft_path = resolve_model(args.draft_model)[1] if args.draft_model else path
        out["draft_model"] = args.draft_model or args.model
        drafted = Ours(path, args.threads, 4096, 1, draft_path=draft_path)
        try:
            pairs = [("a3s plain (draft run)", 0), ("a3s draft-model spec", args.draft_model_max)]
            for rep in range(args.reps):
                for name, dm in pairs if rep % 2 == 0 else pairs[::-1]:
                    record(out, name, await drafted.complete(edit, n_code, ignore_eos=False, draft_max=dm))
            st = drafted.loaded.engine.stats()
            out["a3s draft-model acceptance"] = st["draft_accepted"] / max(1, st["draft_tokens"])
        finally:
            drafted.close()
    for v in out.values():
        if isinstance(v, dict):
            v["tps_med"] = med(v["tps"])
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def markdown(doc: dict[str, Any]) -> str:
    rows = [
        f"### {doc['model']} — {doc['threads']} threads, {doc['reps']} reps, {doc['timestamp']}",
        "",
        "| measurement | A3S Power | llama-server | ratio | target |",
        "|---|---|---|---|---|",
    ]

    def f(x: float | None, spec: str = ".3f") -> str:
        return "—" if x is None else format(x, spec)

    def mark(r: float | None, ok: bool) -> str:
        return "" if r is None else ("✅" if ok else "❌")

    sh = doc.get("shared")
    if sh:
        a, s = sh.get("a3s", {}), sh.get("llama-server", {})
        r = ratio(a.get("ttft_p50"), s.get("ttft_p50"))
        rows.append(
            f"| shared 1.5k prefix, 8 arrive together: TTFT p50 s | {f(a.get('ttft_p50'))} | "
            f"{f(s.get('ttft_p50'))} | {f(r, '.2f')} | ≤0.35 {mark(r, r is not None and r <= 0.35)} |"
        )
        rows.append(
            f"| … prompt tokens evaluated (prefix {a.get('prefix', [0])[0]}, all {a.get('prompt_total', [0])[0]}) "  # noqa: E501
            f"| {f(a.get('evaluated_med'), '.0f')} | {f(s.get('evaluated_med'), '.0f')} | "
            f"{f(ratio(a.get('evaluated_med'), s.get('evaluated_med')), '.2f')} | ≈ prefix + 8 suffixes |"
        )
    ro = doc.get("rotate")
    if ro:
        a, s = ro.get("a3s", {}), ro.get("llama-server", {})
        rc = ratio(a.get("returning_p50"), a.get("cold_p50"))
        rs = ratio(a.get("returning_p50"), s.get("returning_p50"))
        rows.append(
            f"| 16 convs × 4 turns over 4 slots: returning-turn TTFT p50 s | {f(a.get('returning_p50'))} | "
            f"{f(s.get('returning_p50'))} | {f(rs, '.2f')} | ≤1.0 {mark(rs, rs is not None and rs <= 1.0)} |"
        )
        rows.append(
            f"| … returning / cold prefill of the same history (ours; server {f(ratio(s.get('returning_p50'), s.get('cold_p50')), '.2f')}) "  # noqa: E501
            f"| {f(a.get('cold_p50'))} cold | {f(s.get('cold_p50'))} cold | {f(rc, '.2f')} | ≤0.2 {mark(rc, rc is not None and rc <= 0.2)} |"  # noqa: E501
        )
    sp = doc.get("spec")
    if sp:
        plain = sp.get("a3s plain", {}).get("tps_med")
        spec = sp.get("a3s spec", {}).get("tps_med")
        srv = sp.get("llama-server spec", {}).get("tps_med")
        r1, r2 = ratio(spec, plain), ratio(spec, srv)
        rows.append(
            f"| edit task, n-gram speculation: decode tok/s (vs our plain {f(plain, '.1f')}) | {f(spec, '.1f')} | "  # noqa: E501
            f"{f(srv, '.1f')} | {f(r1, '.2f')} vs plain, {f(r2, '.2f')} vs server | ≥1.5 {mark(r1, r1 is not None and r1 >= 1.5)}, ≥1.0 {mark(r2, r2 is not None and r2 >= 1.0)} |"  # noqa: E501
        )
        np_, ns = sp.get("a3s norep plain", {}).get("tps_med"), sp.get("a3s norep spec", {}).get("tps_med")
        r3 = ratio(ns, np_)
        rows.append(
            f"| no-repetition task: spec / plain decode tok/s | {f(ns, '.1f')} / {f(np_, '.1f')} | — | {f(r3, '.2f')} | ≥0.97 {mark(r3, r3 is not None and r3 >= 0.97)} |"  # noqa: E501
        )
        rows.append(f"| … our draft acceptance | {f(sp.get('a3s draft acceptance'), '.2f')} | | | |")
        dp = sp.get("a3s plain (draft run)", {}).get("tps_med")
        ds = sp.get("a3s draft-model spec", {}).get("tps_med")
        if ds is not None:
            r4 = ratio(ds, dp)
            rows.append(
                f"| edit task, draft model ({sp.get('draft_model', '')}): spec / plain decode tok/s | "
                f"{f(ds, '.1f')} / {f(dp, '.1f')} | — | {f(r4, '.2f')} | (no target) |"
            )
            acc = sp.get("a3s draft-model acceptance")
            rows.append(f"| … draft-model acceptance | {f(acc, '.2f')} | | | |")
    return "\n".join(rows)


def plot(doc: dict[str, Any], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    sh, ro, sp = doc.get("shared", {}), doc.get("rotate", {}), doc.get("spec", {})
    names = ["a3s", "llama-server"]
    axes[0].bar(names, [sh.get(n, {}).get("ttft_p50", 0) for n in names], color=["tab:blue", "tab:gray"])
    axes[0].set_title("8 users, shared 1.5k prefix: TTFT p50 (s)")
    labels = ["a3s returning", "a3s cold", "server returning", "server cold"]
    vals = [
        ro.get("a3s", {}).get("returning_p50", 0),
        ro.get("a3s", {}).get("cold_p50", 0),
        ro.get("llama-server", {}).get("returning_p50", 0),
        ro.get("llama-server", {}).get("cold_p50", 0),
    ]
    axes[1].bar(labels, vals, color=["tab:blue", "tab:cyan", "tab:gray", "silver"])
    axes[1].set_title("4 slots, 16 conversations: TTFT p50 (s)")
    axes[1].tick_params(axis="x", rotation=20)
    keys = ["a3s plain", "a3s spec", "llama-server spec", "a3s norep plain", "a3s norep spec"]
    keys.append("a3s draft-model spec")
    axes[2].bar(keys, [sp.get(k, {}).get("tps_med", 0) for k in keys])
    axes[2].set_title("decode tok/s (edit / no-repetition)")
    axes[2].tick_params(axis="x", rotation=30)
    fig.suptitle(f"{doc['model']}, {doc['threads']} threads")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2:135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--draft-max", type=int, default=16)
    ap.add_argument(
        "--draft-model", default="", help="draft model for the edit task ('' = --model itself, none = skip)"
    )
    ap.add_argument("--draft-model-max", type=int, default=8, help="draft length with the draft model")
    ap.add_argument("--only", default="shared,rotate,spec")
    ap.add_argument("--skip-server", action="store_true")
    args = ap.parse_args()
    name, path = resolve_model(args.model)
    bin_dir = None if args.skip_server else build_tools()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / f"{stamp}-beyond-{name}-llama-server.log"
    doc: dict[str, Any] = {
        "model": args.model,
        "threads": args.threads,
        "reps": args.reps,
        "timestamp": stamp,
        "machine": platform.processor() or platform.machine(),
        "command": " ".join(["python", "benchmarks/bench_beyond.py", *sys.argv[1:]]),
    }
    only = set(args.only.split(","))
    if "shared" in only:
        doc["shared"] = asyncio.run(bench_shared(path, bin_dir, log, args))
    if "rotate" in only:
        doc["rotate"] = asyncio.run(bench_rotate(path, bin_dir, log, args))
    if "spec" in only:
        doc["spec"] = asyncio.run(bench_spec(path, bin_dir, log, args))
    table = markdown(doc)
    doc["table"] = table
    out = RESULTS / f"{stamp}-beyond-{name}.json"
    out.write_text(json.dumps(doc, indent=1))
    plot(doc, out.with_suffix(".png"))
    print(table)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
