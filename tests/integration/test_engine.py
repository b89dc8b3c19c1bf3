"""The continuous-batching engine on a real model: concurrency, prefix reuse, stops, grammars,
context limits, logprobs, queue limits and lifecycle."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time

import jsonschema
import pytest

from a3s_power import _native
from a3s_power.errors import Busy, InvalidRequest, PowerError
from a3s_power.runtime import Chunk, Completion, GenerationOptions, generate, generate_sync, load_model
from a3s_power.runtime.grammar import grammar_for_format

GREEDY = dict(temperature=0.0, repeat_penalty=1.0)


def collect(loaded, tokens, **opts) -> tuple[str, list[Chunk], Completion]:
    chunks: list[Chunk] = []
    final = None
    for item in generate_sync(loaded, tokens, GenerationOptions(**opts)):
        if isinstance(item, Completion):
            final = item
        else:
            chunks.append(item)
    assert final is not None
    return "".join(c.text for c in chunks), chunks, final


def chat_tokens(loaded, text: str) -> list[int]:
    return loaded.tokenize(loaded.render_chat([{"role": "user", "content": text}]).prompt, True, True)


@pytest.fixture(scope="module")
def eight(smollm2_path):
    """An 8-slot engine in batch-invariant mode: each slot has its own KV stream, no CPU weight
    repacking. SmolLM2's Q4_1 matmuls then compute each row independently of the batch, so
    outputs are bit-identical to solo runs. (Gemma 3's Q4_K/Q6_K CPU kernels still round by a
    row's place in the batch tile: near-tied greedy choices can flip there, as in llama-server.)
    """
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=8, batch_invariant=True)
    yield loaded
    loaded.close()


def test_default_engine_batches_eight_streams(smollm2_path):
    """Shared KV pool: 8 streams run concurrently, complete, and are mostly identical to solo runs."""
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=8)
    try:
        prompts = [chat_tokens(loaded, q) for q in QUESTIONS]
        options = GenerationOptions(num_predict=32, **GREEDY)

        async def one(p: list[int]) -> Completion:
            final = None
            async for item in generate(loaded, p, options):
                if isinstance(item, Completion):
                    final = item
            assert final is not None
            return final

        async def main() -> list[Completion]:
            return await asyncio.gather(*(one(p) for p in prompts))

        before = loaded.engine.stats()["decode_calls"]
        finals = asyncio.run(main())
        assert all(f.eval_count == 32 or f.done_reason == "stop" for f in finals)
        assert loaded.engine.stats()["decode_calls"] - before < 8 * 32 / 2
    finally:
        loaded.close()


QUESTIONS = [
    "What is the capital of Italy?",
    "Name three colours.",
    "Why do cats purr?",
    "Explain rain briefly.",
    "Write a haiku about snow.",
    "What is 12 times 12?",
    "Give me a fruit name.",
    "How do birds fly?",
]


def test_eight_concurrent_streams_equal_their_single_stream_output(eight):
    loaded = eight
    options = dict(num_predict=48, **GREEDY)
    prompts = [chat_tokens(loaded, q) for q in QUESTIONS]
    single = [collect(loaded, p, **options)[0] for p in prompts]

    async def one(p: list[int]) -> str:
        parts = []
        async for item in generate(loaded, p, GenerationOptions(**options)):
            if isinstance(item, Chunk):
                parts.append(item.text)
        return "".join(parts)

    async def all_at_once() -> list[str]:
        return await asyncio.gather(*(one(p) for p in prompts))

    calls_before = loaded.engine.stats()["decode_calls"]
    concurrent = asyncio.run(all_at_once())
    calls = loaded.engine.stats()["decode_calls"] - calls_before
    assert concurrent == single
    # batched: far fewer decode calls than 8 streams x 48 tokens would need one by one
    assert calls < 8 * 48 / 2


def test_turn_two_evaluates_only_the_new_tokens(smollm2):
    history = [{"role": "user", "content": "Tell me about the moon in two sentences."}]
    t1 = chat_tokens(smollm2, history[0]["content"])
    text1, _, c1 = collect(smollm2, t1, num_predict=32, **GREEDY)
    assert c1.prompt_eval_count == len(t1) - c1.cached_tokens
    history += [{"role": "assistant", "content": text1}, {"role": "user", "content": "And the sun?"}]
    t2 = smollm2.tokenize(smollm2.render_chat(history).prompt, True, True)
    # the turn-1 prompt plus reply tokens are in the slot's cache: only the new suffix is evaluated
    common = 0
    while common < min(len(c1.context), len(t2)) and c1.context[common] == t2[common]:
        common += 1
    assert common > len(t1)
    _, _, c2 = collect(smollm2, t2, num_predict=8, **GREEDY)
    assert c2.cached_tokens >= common - 1
    assert c2.prompt_eval_count == len(t2) - c2.cached_tokens
    assert c2.prompt_eval_count <= len(t2) - len(t1)


def test_identical_prompt_reuses_all_but_one_token(smollm2):
    tokens = chat_tokens(smollm2, "Repeat after me: banana.")
    collect(smollm2, tokens, num_predict=4, **GREEDY)
    _, _, again = collect(smollm2, tokens, num_predict=4, **GREEDY)
    assert again.prompt_eval_count == 1 and again.cached_tokens == len(tokens) - 1


def test_cache_prompt_false_evaluates_everything(smollm2):
    tokens = chat_tokens(smollm2, "Repeat after me: cherry.")
    collect(smollm2, tokens, num_predict=4, **GREEDY)
    _, _, c = collect(smollm2, tokens, num_predict=4, cache_prompt=False, **GREEDY)
    assert c.prompt_eval_count == len(tokens)


def test_stop_string_split_across_tokens(smollm2):
    tokens = chat_tokens(smollm2, "Write a short story about a fox.")
    text, chunks, _ = collect(smollm2, tokens, num_predict=60, **GREEDY)
    # find a boundary between two chunks (token texts) and take a stop string spanning it
    pieces = [smollm2.model.token_to_piece(t).decode("utf-8", "replace") for c in chunks for t in c.tokens]
    offset = 0
    stop = None
    for i in range(3, len(pieces) - 1):
        offset = sum(len(p) for p in pieces[:i])
        left, right = pieces[i - 1], pieces[i]
        if len(left.strip()) >= 2 and len(right.strip()) >= 2:
            stop = left[-2:] + right[:2]
            break
    assert stop is not None
    cut = text.find(stop)
    assert 0 <= cut <= offset
    stopped, _, final = collect(smollm2, tokens, num_predict=60, stop=[stop], **GREEDY)
    assert final.done_reason == "stop"
    assert stopped == text[:cut]
    assert stop not in stopped


def test_multiple_stops_first_match_wins(smollm2):
    tokens = smollm2.tokenize("1, 2, 3, 4, 5, 6, 7,", True, False)
    text, _, final = collect(smollm2, tokens, num_predict=30, stop=["13", "9,"], **GREEDY)
    assert final.done_reason == "stop"
    assert "9," not in text and "13" not in text


def test_gbnf_grammar_constrains_output(smollm2):
    grammar = 'root ::= ("yes" | "no") "." '
    text, _, final = collect(
        smollm2, chat_tokens(smollm2, "Is water wet?"), num_predict=10, grammar=grammar, **GREEDY
    )
    assert text in ("yes.", "no.")


def test_invalid_grammar_is_rejected_before_queueing(smollm2):
    with pytest.raises(InvalidRequest, match="grammar"):
        collect(smollm2, smollm2.tokenize("hi"), grammar="root ::= (unclosed", **GREEDY)


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "pets": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_json_schema_output_validates(smollm2, temperature):
    grammar = grammar_for_format(SCHEMA)
    text, _, final = collect(
        smollm2,
        chat_tokens(smollm2, "Describe a person as JSON."),
        num_predict=200,
        grammar=grammar,
        temperature=temperature,
        seed=3,
    )
    assert final.done_reason == "stop", text
    jsonschema.validate(json.loads(text), SCHEMA)


def test_json_mode_gives_an_object(smollm2):
    text, _, final = collect(
        smollm2,
        chat_tokens(smollm2, 'Reply with {"city": <a city name>} only.'),
        num_predict=300,
        grammar=grammar_for_format("json"),
        **GREEDY,
    )
    assert final.done_reason == "stop", text
    assert isinstance(json.loads(text), dict)


def test_logprobs(smollm2):
    tokens = smollm2.tokenize("The capital of France is", True, False)
    _, chunks, final = collect(smollm2, tokens, num_predict=6, logprobs=True, top_logprobs=5, **GREEDY)
    lps = [lp for c in chunks for lp in (c.logprobs or [])]
    assert len(lps) == final.eval_count == 6
    for lp in lps:
        assert lp.logprob <= 0.0
        assert len(lp.top) == 5
        assert lp.top[0][0] == lp.token  # greedy: the chosen token is the most likely
        assert math.isclose(lp.top[0][2], lp.logprob, abs_tol=1e-5)
        assert sum(math.exp(t[2]) for t in lp.top) <= 1.0 + 1e-4
        assert lp.text == smollm2.model.token_to_piece(lp.token, True)


def test_top_logprobs_range_is_checked(smollm2):
    with pytest.raises(InvalidRequest, match="top_logprobs"):
        collect(smollm2, smollm2.tokenize("hi"), top_logprobs=21, **GREEDY)


@pytest.fixture(scope="module")
def tiny_ctx(smollm2_path):
    loaded = load_model(smollm2_path, num_ctx=128, num_parallel=1)
    yield loaded
    loaded.close()


def test_long_prompt_is_truncated_keeping_num_keep(tiny_ctx):
    tokens = tiny_ctx.tokenize(" ".join(f"word{i}" for i in range(200)), True, False)
    assert len(tokens) > 128
    _, _, c = collect(tiny_ctx, tokens, num_predict=4, num_keep=10, **GREEDY)
    keep = 10 + (1 if tiny_ctx.info.add_bos else 0)
    kept = len(tokens) - c.truncated
    assert c.truncated > 0
    assert kept == 128 - max((128 - keep) // 2, 1)  # Ollama's limit for a prompt that does not fit
    assert c.context[:keep] == tokens[:keep]  # (BOS +) num_keep tokens survive
    assert c.context[keep:kept] == tokens[len(tokens) - (kept - keep) :]  # then the most recent tail


def test_long_prompt_refused_when_truncate_is_false(tiny_ctx):
    tokens = tiny_ctx.tokenize("x " * 300, True, False)
    with pytest.raises(InvalidRequest, match="the prompt is longer than the context length"):
        collect(tiny_ctx, tokens, truncate=False, **GREEDY)


def test_generation_past_num_ctx_shifts(tiny_ctx):
    tokens = tiny_ctx.tokenize("Count: 1 2 3", True, False)
    _, _, c = collect(tiny_ctx, tokens, num_predict=300, ignore_eos=True, **GREEDY)
    assert c.eval_count == 300
    assert c.done_reason == "length"
    assert c.raw["context_shifts"] >= 2


def test_generation_past_num_ctx_without_shift_stops_with_length(tiny_ctx):
    tokens = tiny_ctx.tokenize("Count: 1 2 3", True, False)
    _, _, c = collect(tiny_ctx, tokens, num_predict=300, ignore_eos=True, shift=False, **GREEDY)
    assert c.done_reason == "length"
    assert len(tokens) + c.eval_count <= 128 + 1
    assert c.raw["context_shifts"] == 0


def test_queue_limit_raises_busy(smollm2_path):
    mp = _native.ModelParams()
    model = _native.Model.load(str(smollm2_path), mp)
    ep = _native.EngineParams()
    ep.n_ctx, ep.n_parallel, ep.max_queue = 256, 1, 2
    engine = _native.Engine(model, ep)
    try:
        req = GenerationOptions(num_predict=400, ignore_eos=True, **GREEDY).to_request(
            model.tokenize("Hi", True, False)
        )
        channels = [engine.submit(req)]
        deadline = time.monotonic() + 10
        while engine.stats()["n_active"] != 1:  # the first takes the only slot
            assert time.monotonic() < deadline
            time.sleep(0.01)
        channels += [engine.submit(req), engine.submit(req)]  # two wait in the queue
        assert engine.stats()["n_queued"] == 2
        with pytest.raises(_native.BusyError, match="server busy"):
            channels.append(engine.submit(req))
        for ch in channels:
            ch.cancel()
    finally:
        engine.shutdown()


def test_busy_maps_to_the_error_hierarchy(smollm2_path):
    loaded = load_model(smollm2_path, num_ctx=256, num_parallel=1, max_queue=0)
    try:
        with pytest.raises(Busy, match="server busy"):
            next(generate_sync(loaded, loaded.tokenize("Hi"), GenerationOptions(num_predict=5, **GREEDY)))
        assert Busy.status == 503
    finally:
        loaded.close()


def test_more_requests_than_slots_all_complete(smollm2_path):
    loaded = load_model(smollm2_path, num_ctx=256, num_parallel=2)
    try:

        async def one(i: int) -> Completion:
            final = None
            async for item in generate(
                loaded,
                loaded.tokenize(f"Number {i}:", True, False),
                GenerationOptions(num_predict=12, ignore_eos=True, **GREEDY),
            ):
                if isinstance(item, Completion):
                    final = item
            assert final is not None
            return final

        async def main() -> list[Completion]:
            return await asyncio.gather(*(one(i) for i in range(6)))

        finals = asyncio.run(main())
        assert all(f.eval_count == 12 for f in finals)
        assert any(f.raw["queue_duration"] > 0 for f in finals)
    finally:
        loaded.close()


def test_unloading_while_generating_ends_requests_with_an_error(smollm2_path):
    loaded = load_model(smollm2_path, num_ctx=256, num_parallel=2)
    errors: list[str] = []

    def consume() -> None:
        try:
            for _ in generate_sync(
                loaded,
                loaded.tokenize("Go on forever", True, False),
                GenerationOptions(num_predict=5000, ignore_eos=True, **GREEDY),
            ):
                pass
        except PowerError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=consume) for _ in range(3)]  # 2 running + 1 queued
    for t in threads:
        t.start()
    time.sleep(0.5)
    loaded.close()
    for t in threads:
        t.join(timeout=10)
    assert errors == ["model unloaded"] * 3
    with pytest.raises(PowerError):
        collect(loaded, loaded.tokenize("again"), **GREEDY)


def test_logit_bias_bans_a_token(smollm2):
    tokens = smollm2.tokenize("The capital of France is", True, False)
    text, chunks, _ = collect(smollm2, tokens, num_predict=3, **GREEDY)
    first = chunks[0].tokens[0]
    _, banned_chunks, _ = collect(smollm2, tokens, num_predict=3, logit_bias={first: -math.inf}, **GREEDY)
    assert banned_chunks[0].tokens[0] != first


def test_sampler_inputs_are_refused_before_queueing(smollm2):
    """What the decode thread's sampler would fail on is a 400 from submit, never a failed request."""
    tokens = smollm2.tokenize("Hi", True, False)
    cases = [
        ({"logit_bias": {10**9: 1.0}}, "out of range"),
        ({"mirostat": 5}, "mirostat must be 0, 1 or 2"),
        ({"grammar": "root ::= ("}, "invalid grammar"),
    ]
    for options, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            next(iter(generate_sync(smollm2, tokens, GenerationOptions(num_predict=1, **options))))


def test_penalties_change_greedy_output(smollm2):
    tokens = smollm2.tokenize("1 1 1 1 1 1 1 1 1 1", True, False)
    plain, _, _ = collect(smollm2, tokens, num_predict=16, **GREEDY)
    penalised, _, _ = collect(
        smollm2,
        tokens,
        num_predict=16,
        temperature=0.0,
        repeat_penalty=1.8,
        presence_penalty=1.0,
        frequency_penalty=1.0,
    )
    assert plain.count("1") > penalised.count("1")


@pytest.mark.parametrize("mirostat", [1, 2])
def test_mirostat_is_seeded(smollm2, mirostat):
    tokens = smollm2.tokenize("A poem about trees:", True, False)
    opts = dict(
        num_predict=20, mirostat=mirostat, mirostat_tau=3.0, mirostat_eta=0.2, seed=11, temperature=0.9
    )
    a, _, _ = collect(smollm2, tokens, **opts)
    b, _, _ = collect(smollm2, tokens, **opts)
    assert a == b and a


def test_seeds_are_reproducible_under_concurrency(eight):
    """Same seed + same request => same output while other requests share the batch (in
    batch-invariant mode; the default shared KV pool matches up to floating-point rounding)."""
    tokens = [eight.tokenize(f"Story {i}:", True, False) for i in range(4)]
    opts = dict(num_predict=24, temperature=1.0, seed=1234)
    alone = [collect(eight, t, **opts)[0] for t in tokens]

    async def one(t: list[int]) -> str:
        return "".join(
            [c.text async for c in generate(eight, t, GenerationOptions(**opts)) if isinstance(c, Chunk)]
        )

    async def main() -> list[str]:
        return await asyncio.gather(*(one(t) for t in tokens))

    assert asyncio.run(main()) == alone
