#!/usr/bin/env python3
"""A3S Power's engine vs llama.cpp's own llama-server: same model, threads, context, slots and batch.

One run measures, for both engines, interleaved rep by rep (so machine noise hits both alike):
  * single stream: TTFT and decode tok/s for 32- and 512-token prompts (greedy, ignore_eos);
  * 1, 4 and 8 concurrent streams (distinct prompts) against `--parallel N` / `num_parallel=N`:
    aggregate tok/s and p50/p95 TTFT;
  * turn 2 of a chat on a ~1.5k-token shared history: TTFT of turn 2 / TTFT of turn 1;
  * llama-bench pp/tg for the same model and threads (the hardware ceiling).
Ours runs in-process through the asyncio API; llama-server over HTTP on 127.0.0.1 (`/completion`,
`cache_prompt`, streamed). Writes benchmarks/results/<timestamp>-<model>.json, a PNG and latest.md.

    python benchmarks/bench_engine.py --model smollm2:135m [--threads 2] [--quick] [--skip-server]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from _servers import ServerProcess, free_port, llama_server_cmd, stream_completion

from a3s_power.runtime import Chunk, Completion, GenerationOptions, LoadedModel, generate, load_model

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORDS = (  # noqa: SIM905 - a word list is easier to read as prose
    "the model server answers questions about rivers mountains cities history music science code weather "
    "gardens trains libraries bridges markets oceans forests engines planets languages recipes stories "
    "quickly carefully because although while every small large ancient modern quiet bright distant "
    "build explain compare describe remember travel measure follow gather improve protect discover"
).split()


# ----------------------------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Config:
    model: str
    threads: int
    num_ctx: int
    num_batch: int
    num_ubatch: int
    reps: int
    n_predict: int
    stream_prompt: int
    history_tokens: int
    turn_predict: int
    quick: bool


@dataclass
class Sample:
    """One request, timed by the client; `engine_*` are what the engine itself reports."""

    ttft_s: float
    total_s: float
    n_gen: int
    n_prompt: int
    n_cached: int
    text: str = ""
    start_s: float = 0.0
    end_s: float = 0.0

    @property
    def decode_tps(self) -> float:
        dt = self.total_s - self.ttft_s
        return (self.n_gen - 1) / dt if self.n_gen > 1 and dt > 0 else 0.0


def prose(seed: str, n_words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


class Tokenizer(Protocol):
    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]: ...


def prompt_tokens(tok: Tokenizer, nonce: str, n_tokens: int) -> list[int]:
    """Exactly n_tokens, starting with a unique nonce so no two prompts share more than BOS."""
    ids = tok.tokenize(f"{nonce}. {prose(nonce, n_tokens * 2)}", True, False)
    if len(ids) < n_tokens:
        raise ValueError(f"prompt generator produced {len(ids)} < {n_tokens} tokens")
    return ids[:n_tokens]


def chat_turn1(loaded: LoadedModel, nonce: str, n_tokens: int) -> tuple[list[dict[str, str]], list[int]]:
    """A multi-turn conversation grown until its rendered prompt has at least n_tokens, plus a question."""
    messages = [{"role": "system", "content": f"Session {nonce}. You are a concise assistant."}]
    question = {"role": "user", "content": "Summarise the conversation so far in one sentence."}
    while True:
        tokens = loaded.tokenize(loaded.render_chat([*messages, question]).prompt, False, True)
        if len(tokens) >= n_tokens:
            return [*messages, question], tokens
        i = len(messages) // 2
        messages.append({"role": "user", "content": f"Question {i}: " + prose(f"{nonce}-q{i}", 30)})
        messages.append({"role": "assistant", "content": prose(f"{nonce}-a{i}", 90)})


# ----------------------------------------------------------------------------------------------- engines


class Engine(Protocol):
    name: str
    pids: list[int]  # processes doing this engine's work besides ours

    async def complete(self, tokens: list[int], n_predict: int) -> Sample: ...
    def decode_calls(self) -> int: ...


def sampling(n_predict: int) -> dict[str, Any]:
    """Identical, explicit sampling for both engines: greedy through the same common_sampler chain."""
    return {
        "n_predict": n_predict,
        "temperature": 0.0,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repeat_penalty": 1.0,
        "repeat_last_n": 64,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": 42,
        "ignore_eos": True,
    }


class Ours:
    name = "a3s"
    pids: list[int] = []

    def __init__(self, path: Path, cfg: Config, parallel: int) -> None:
        self.loaded: LoadedModel = load_model(
            path, num_ctx=cfg.num_ctx, num_parallel=parallel, num_batch=cfg.num_batch, num_thread=cfg.threads
        )

    async def complete(self, tokens: list[int], n_predict: int) -> Sample:
        s = sampling(n_predict)
        opts = GenerationOptions(
            num_predict=n_predict,
            temperature=s["temperature"],
            top_k=s["top_k"],
            top_p=s["top_p"],
            min_p=s["min_p"],
            typical_p=s["typical_p"],
            repeat_penalty=s["repeat_penalty"],
            repeat_last_n=s["repeat_last_n"],
            seed=s["seed"],
            ignore_eos=True,
            cache_prompt=True,
        )
        t0 = time.perf_counter()
        ttft = 0.0
        parts: list[str] = []
        done: Completion | None = None
        async for ev in generate(self.loaded, tokens, opts):
            if isinstance(ev, Chunk):
                if not ttft and ev.tokens:
                    ttft = time.perf_counter() - t0
                parts.append(ev.text)
            else:
                done = ev
        t1 = time.perf_counter()
        assert done is not None
        return Sample(
            ttft, t1 - t0, done.eval_count, done.prompt_eval_count, done.cached_tokens, "".join(parts), t0, t1
        )

    def decode_calls(self) -> int:
        return int(self.loaded.engine.stats()["decode_calls"])

    def close(self) -> None:
        self.loaded.close()


class Server(ServerProcess):
    def __init__(self, exe: Path, path: Path, cfg: Config, parallel: int, log: Path) -> None:
        port = free_port()
        cmd = llama_server_cmd(exe, path, cfg.threads, cfg.num_ctx, parallel, port,
                               batch=cfg.num_batch, ubatch=cfg.num_ubatch)  # fmt: skip
        super().__init__("llama-server", cmd, port, log)

    async def complete(self, tokens: list[int], n_predict: int) -> Sample:
        body = {"prompt": tokens, "stream": True, "cache_prompt": True, **sampling(n_predict)}
        r = await stream_completion(self.client, body)
        return Sample(
            r.ttft,
            r.end - r.t0,
            int(r.timings.get("predicted_n", 0)),
            int(r.timings.get("prompt_n", 0)),
            int(r.timings.get("cache_n", 0)),
            r.text,
            r.t0,
            r.end,
        )

    def decode_calls(self) -> int:
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        m = re.search(r"^llamacpp:n_decode_total (\S+)$", text, re.M)
        return int(float(m.group(1))) if m else -1


# ----------------------------------------------------------------------------------------------- measurements


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def med(values: list[float], empty: float = 0.0) -> float:
    return statistics.median(values) if values else empty


TICK = os.sysconf("SC_CLK_TCK")


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def proc_jiffies(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, all threads
    return total


T = TypeVar("T")


class Guard:
    """The machine is shared. Start each measurement only when the CPUs are idle, and redo it (fresh
    prompts) when other processes used more than `max_foreign` cores while it ran."""

    def __init__(self, max_foreign: float = 0.2, attempts: int = 3) -> None:
        self.max_foreign, self.attempts = max_foreign, attempts
        self.foreign: list[float] = []  # other processes' CPU use (cores) during each accepted measurement
        self.redone = 0

    @staticmethod
    def wait_quiet(max_busy: float = 0.1, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            b0, t0 = cpu_jiffies()
            time.sleep(0.5)
            b1, t1 = cpu_jiffies()
            if (b1 - b0) / max(t1 - t0, 1) <= max_busy:
                return
        print(f"  (CPUs still busy after {timeout_s:.0f} s; measuring anyway)", file=sys.stderr, flush=True)

    async def run(self, pids: list[int], measure: Callable[[], Awaitable[T]]) -> T:
        pids = [os.getpid(), *pids]
        for attempt in range(self.attempts):
            self.wait_quiet()
            busy0, own0, w0 = cpu_jiffies()[0], proc_jiffies(pids), time.monotonic()
            result = await measure()
            busy1, own1, w1 = cpu_jiffies()[0], proc_jiffies(pids), time.monotonic()
            foreign = max(0.0, (busy1 - busy0) - (own1 - own0)) / TICK / max(w1 - w0, 1e-3)
            if foreign <= self.max_foreign or attempt == self.attempts - 1:
                self.foreign.append(round(foreign, 3))
                return result
            self.redone += 1
            print(
                f"  (other processes used {foreign:.2f} cores; measuring again)", file=sys.stderr, flush=True
            )
        raise AssertionError("unreachable")


GUARD = Guard()


class Nonces:
    def __init__(self, run_id: str) -> None:
        self.run_id, self.n = run_id, 0

    def __call__(self, kind: str) -> str:
        self.n += 1
        return f"{self.n} {kind} {self.run_id}"


async def single_stream(engines: list[Engine], tok: Tokenizer, cfg: Config, nonce: Nonces) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n_prompt in (32, 512):
        runs: dict[str, list[Sample]] = {e.name: [] for e in engines}
        for rep in range(cfg.reps):
            for e in engines[:: 1 if rep % 2 == 0 else -1]:

                async def one(e: Engine = e, n: int = n_prompt) -> Sample:
                    return await e.complete(prompt_tokens(tok, nonce("Single"), n), cfg.n_predict)

                runs[e.name].append(await GUARD.run(e.pids, one))
        out[f"prompt{n_prompt}"] = {
            name: {
                "ttft_ms": med([s.ttft_s * 1e3 for s in ss]),
                "decode_tps": med([s.decode_tps for s in ss]),
                "samples": [asdict(s) | {"text": ""} for s in ss],
            }
            for name, ss in runs.items()
        }
    return out


async def concurrent(
    engines: list[Engine], tok: Tokenizer, cfg: Config, nonce: Nonces, n: int
) -> dict[str, Any]:
    per: dict[str, dict[str, list[float]]] = {e.name: {"agg": [], "ttft": [], "calls": []} for e in engines}
    for rep in range(cfg.reps):
        for e in engines[:: 1 if rep % 2 == 0 else -1]:

            async def streams(e: Engine = e) -> tuple[list[Sample], float, int]:
                prompts = [prompt_tokens(tok, nonce(f"Stream{i}"), cfg.stream_prompt) for i in range(n)]
                calls0 = e.decode_calls()
                t0 = time.perf_counter()
                samples = await asyncio.gather(*(e.complete(p, cfg.n_predict) for p in prompts))
                return samples, time.perf_counter() - t0, e.decode_calls() - calls0

            samples, wall, calls = await GUARD.run(e.pids, streams)
            per[e.name]["agg"].append(sum(s.n_gen for s in samples) / wall)
            per[e.name]["ttft"].extend(s.ttft_s * 1e3 for s in samples)
            per[e.name]["calls"].append(calls)
    return {
        name: {
            "agg_tps": med(d["agg"]),
            "ttft_p50_ms": pct(d["ttft"], 0.5),
            "ttft_p95_ms": pct(d["ttft"], 0.95),
            "decode_calls": med(d["calls"]),
            "agg_tps_reps": d["agg"],
            "ttft_ms_all": d["ttft"],
        }
        for name, d in per.items()
    }


async def turn2(engines: list[Engine], ours: Ours, cfg: Config, nonce: Nonces) -> dict[str, Any]:
    per: dict[str, dict[str, list[float]]] = {
        e.name: {"t1": [], "t2": [], "new": [], "cached": []} for e in engines
    }
    for rep in range(cfg.reps):
        for e in engines[:: 1 if rep % 2 == 0 else -1]:

            async def chat(e: Engine = e) -> tuple[Sample, Sample, int]:
                q1, p1 = chat_turn1(ours.loaded, nonce("Chat"), cfg.history_tokens)
                a = await e.complete(p1, cfg.turn_predict)
                q2 = q1 + [
                    {"role": "assistant", "content": a.text},
                    {"role": "user", "content": "Now list three of the topics mentioned."},
                ]
                p2 = ours.loaded.tokenize(ours.loaded.render_chat(q2).prompt, False, True)
                return a, await e.complete(p2, cfg.turn_predict), len(p1)

            a, b, n_history = await GUARD.run(e.pids, chat)
            d = per[e.name]
            d["t1"].append(a.ttft_s * 1e3)
            d["t2"].append(b.ttft_s * 1e3)
            d["new"].append(float(b.n_prompt))
            d["cached"].append(float(b.n_cached))
            d.setdefault("len", []).append(float(n_history))
    return {
        name: {
            "turn1_ttft_ms": med(d["t1"]),
            "turn2_ttft_ms": med(d["t2"]),
            "ratio": med([b / a for a, b in zip(d["t1"], d["t2"], strict=True)]),
            "history_tokens": med(d["len"]),
            "turn2_evaluated": med(d["new"]),
            "turn2_cached": med(d["cached"]),
        }
        for name, d in per.items()
    }


def llama_bench(exe: Path, model: Path, cfg: Config) -> dict[str, Any]:
    cmd = [
        str(exe),
        "-m",
        str(model),
        "-t",
        str(cfg.threads),
        "-p",
        "512",
        "-n",
        "128",
        "-b",
        str(cfg.num_batch),
        "-ub",
        str(cfg.num_ubatch),
        "-r",
        str(cfg.reps),
        "-o",
        "json",
    ]
    Guard.wait_quiet()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    out: dict[str, Any] = {"cmd": " ".join(cmd)}
    for row in json.loads(proc.stdout):
        key = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        out[key] = {"avg_ts": row["avg_ts"], "stddev_ts": row["stddev_ts"]}
    return out


# ----------------------------------------------------------------------------------------------- driver


def resolve_model(spec: str) -> tuple[str, Path]:
    if Path(spec).is_file():
        return Path(spec).stem, Path(spec)
    from a3s_power.bundled import bundled_model_path

    return spec.replace(":", "-"), Path(bundled_model_path(spec))


def build_tools() -> Path:
    proc = subprocess.run(
        ["bash", str(HERE / "build_llama_server.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(proc.stdout.strip().splitlines()[-1])


@contextlib.asynccontextmanager
async def engines_for(
    path: Path, cfg: Config, parallel: int, bin_dir: Path | None, log: Path
) -> AsyncIterator[tuple[list[Engine], Ours]]:
    ours = Ours(path, cfg, parallel)
    server = Server(bin_dir / "llama-server", path, cfg, parallel, log) if bin_dir else None
    try:
        engines: list[Engine] = [ours]
        if server:
            await server.wait_ready()
            engines.append(server)
        warm = list(range(100, 164))
        for e in engines:  # warm-up: first graph build, thread pools, page faults
            await e.complete(warm, 8)
        yield engines, ours
    finally:
        ours.close()
        if server:
            await server.close()


async def run(cfg: Config, path: Path, bin_dir: Path | None, log: Path) -> dict[str, Any]:
    nonce = Nonces(f"{int(time.time()) % 100000}")
    res: dict[str, Any] = {}
    async with engines_for(path, cfg, 1, bin_dir, log) as (engines, ours):
        print("[1 slot] single stream ...", file=sys.stderr, flush=True)
        res["single"] = await single_stream(engines, ours.loaded, cfg, nonce)
        print("[1 slot] turn 2 ...", file=sys.stderr, flush=True)
        res["turn2"] = await turn2(engines, ours, cfg, nonce)
        res["concurrency"] = {"1": await concurrent(engines, ours.loaded, cfg, nonce, 1)}
    for n in (4, 8):
        async with engines_for(path, cfg, n, bin_dir, log) as (engines, ours):
            print(f"[{n} slots] {n} streams ...", file=sys.stderr, flush=True)
            res["concurrency"][str(n)] = await concurrent(engines, ours.loaded, cfg, nonce, n)
    if bin_dir:
        print("llama-bench ...", file=sys.stderr, flush=True)
        res["llama_bench"] = llama_bench(bin_dir / "llama-bench", path, cfg)
    return res


def ratio(res: dict[str, Any], *keys: str) -> float | None:
    node: Any = res
    for k in keys[:-1]:
        node = node[k]
    if "llama-server" not in node:
        return None
    theirs = node["llama-server"][keys[-1]]
    return node["a3s"][keys[-1]] / theirs if theirs else None


def ratios(res: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for p in ("prompt32", "prompt512"):
        out[f"single_{p}_decode_tps"] = ratio(res, "single", p, "decode_tps")
        out[f"single_{p}_ttft"] = ratio(res, "single", p, "ttft_ms")
    for n in res["concurrency"]:
        out[f"streams{n}_agg_tps"] = ratio(res, "concurrency", n, "agg_tps")
        out[f"streams{n}_ttft_p50"] = ratio(res, "concurrency", n, "ttft_p50_ms")
    return out


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def markdown(doc: dict[str, Any]) -> str:
    res, cfg = doc["results"], doc["config"]
    names = [n for n in ("a3s", "llama-server") if n in res["single"]["prompt32"]]
    server = "llama-server" in names
    lines = [
        f"### {cfg['model']} — {cfg['threads']} threads, num_ctx {cfg['num_ctx']}/slot, "
        f"batch {cfg['num_batch']}/{cfg['num_ubatch']}, {cfg['reps']} reps (medians), {doc['timestamp']}",
        "",
        "| measurement | A3S Power | llama-server | ours / server | target |",
        "|---|---|---|---|---|",
    ]

    def row(
        label: str, node: dict[str, Any], key: str, spec: str, target: str, lower_better: bool = False
    ) -> None:
        ours = node["a3s"][key]
        theirs = node["llama-server"][key] if server else None
        r = ours / theirs if theirs else None
        verdict = ""
        if r is not None and target:
            ok = r <= float(target[1:]) if lower_better else r >= float(target[1:])
            verdict = f"{target} {'✅' if ok else '❌'}"
        lines.append(f"| {label} | {fmt(ours, spec)} | {fmt(theirs, spec)} | {fmt(r)} | {verdict} |")

    for p in ("prompt32", "prompt512"):
        n = p.removeprefix("prompt")
        row(f"single stream, {n}-tok prompt: decode tok/s", res["single"][p], "decode_tps", ".1f", "≥1.00")
        row(f"single stream, {n}-tok prompt: TTFT ms", res["single"][p], "ttft_ms", ".1f", "")
    for n, node in res["concurrency"].items():
        target = "≥0.95" if n != "1" else "≥1.00"
        row(f"{n} streams (parallel {n}): aggregate tok/s", node, "agg_tps", ".1f", target)
        row(f"{n} streams: TTFT p50 ms", node, "ttft_p50_ms", ".1f", "")
        row(f"{n} streams: TTFT p95 ms", node, "ttft_p95_ms", ".1f", "")
        row(f"{n} streams: llama_decode calls per rep", node, "decode_calls", ".0f", "")
    t2 = res["turn2"]
    for key, label in (("turn1_ttft_ms", "turn 1 TTFT ms"), ("turn2_ttft_ms", "turn 2 TTFT ms")):
        row(f"chat on {t2['a3s']['history_tokens']:.0f}-tok history: {label}", t2, key, ".1f", "")
    verdicts = " ".join(f"{n}: {'✅' if t2[n]['ratio'] <= 0.15 else '❌'}" for n in names)
    lines.append(
        f"| turn 2 / turn 1 TTFT | {fmt(t2['a3s']['ratio'])} | "
        f"{fmt(t2['llama-server']['ratio']) if server else '–'} |  | ≤0.15 {verdicts} |"
    )
    evaluated = {n: f"{t2[n]['turn2_evaluated']:.0f} / {t2[n]['turn2_cached']:.0f}" for n in names}
    lines.append(
        f"| turn 2 prompt tokens evaluated / cached | {evaluated['a3s']} | "
        f"{evaluated.get('llama-server', '–')} |  |  |"
    )
    if "llama_bench" in res:
        lb = res["llama_bench"]
        lines += [
            "",
            f"llama-bench (hardware ceiling): pp512 {lb['pp512']['avg_ts']:.1f} tok/s, "
            f"tg128 {lb['tg128']['avg_ts']:.1f} tok/s (`{Path(lb['cmd'].split()[0]).name} "
            f"{' '.join(lb['cmd'].split()[1:])}`)",
        ]
    lines += [
        "",
        f"Command: `{doc['command']}` on {doc['machine']}. Shared, noisy 2-core machine: "
        "treat differences under ~5 % as noise.",
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = doc["results"]
    names = [n for n in ("a3s", "llama-server") if n in res["single"]["prompt32"]]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    panels: list[tuple[str, list[str], Iterator[list[float]]]] = [
        (
            "single-stream decode tok/s",
            ["32-tok", "512-tok"],
            ([res["single"][p][n]["decode_tps"] for p in ("prompt32", "prompt512")] for n in names),
        ),
        (
            "single-stream TTFT ms",
            ["32-tok", "512-tok"],
            ([res["single"][p][n]["ttft_ms"] for p in ("prompt32", "prompt512")] for n in names),
        ),
        (
            "aggregate tok/s (N streams, parallel N)",
            list(res["concurrency"]),
            ([res["concurrency"][c][n]["agg_tps"] for c in res["concurrency"]] for n in names),
        ),
        (
            "chat TTFT ms",
            ["turn 1", "turn 2"],
            ([res["turn2"][n]["turn1_ttft_ms"], res["turn2"][n]["turn2_ttft_ms"]] for n in names),
        ),
    ]
    width = 0.8 / len(names)
    for ax, (title, labels, series) in zip(axes, panels, strict=True):
        for i, (name, values) in enumerate(zip(names, series, strict=True)):
            xs = [x + i * width for x in range(len(labels))]
            bars = ax.bar(xs, values, width, label=name)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(labels))], labels)
        ax.set_title(title, fontsize=10)
    axes[0].legend()
    fig.suptitle(f"{doc['config']['model']}, {doc['config']['threads']} threads — {doc['timestamp']}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2:135m", help="smollm2:135m | gemma3:270m | path to a GGUF")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-ctx", type=int, default=4096, help="context per slot (server gets -c num_ctx*N)")
    ap.add_argument("--reps", type=int, default=0, help="repetitions per measurement (default 3, --quick 1)")
    ap.add_argument("--quick", action="store_true", help="1 rep, shorter generations")
    ap.add_argument("--skip-server", action="store_true", help="measure only our engine")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop llama-server
    name, path = resolve_model(args.model)
    cfg = Config(
        model=args.model,
        threads=args.threads,
        num_ctx=args.num_ctx,
        num_batch=2048,
        num_ubatch=512,
        reps=args.reps or (1 if args.quick else 3),
        n_predict=64 if args.quick else 128,
        stream_prompt=64 if args.quick else 128,
        history_tokens=1500,
        turn_predict=32,
        quick=args.quick,
    )
    bin_dir = None if args.skip_server else build_tools()
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = RESULTS / f"{stamp}-{name}-llama-server.log"
    results = asyncio.run(run(cfg, path, bin_dir, log))
    doc = {
        "timestamp": stamp,
        "command": "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "model_path": str(path),
        "config": asdict(cfg),
        "results": results,
        "ratios": ratios(results),
        "foreign_cpu_cores_during_measurements": GUARD.foreign,
        "measurements_redone_for_noise": GUARD.redone,
    }
    (RESULTS / f"{stamp}-{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(doc, RESULTS / f"{stamp}-{name}.png")
    table = markdown(doc)
    (RESULTS / "latest.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
