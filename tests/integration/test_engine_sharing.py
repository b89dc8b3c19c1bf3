"""Cross-slot prefix sharing and the host-RAM prompt cache on a real model.

Equality checks run with row-independent CPU kernels (`batch_invariant=True`, no weight repacking)
so a request's greedy output does not depend on what it is batched with; `kv_unified=True` then
keeps the one KV pool whose cells sequences share (the case that can go wrong), `kv_unified=False`
the per-slot streams (sharing copies the stream)."""

from __future__ import annotations

import asyncio

import pytest

from a3s_power.runtime import Chunk, Completion, GenerationOptions, generate, generate_sync, load_model
from fixtures.edit_task import PROMPT as EDIT_PROMPT

GREEDY = dict(temperature=0.0, repeat_penalty=1.0)
SYSTEM = (
    "You are a careful assistant for a public library. Answer in one short paragraph. "
    "The library opens at nine and closes at six, except on Sundays when it is closed. "
    "Members may borrow up to ten books for three weeks; magazines for one week. "
    "Late returns cost ten cents a day. The reading room is on the second floor, the children's "
    "corner on the ground floor next to the cafe, and the archive in the basement, by appointment. "
    "Wi-Fi is free; printing costs five cents a page. Be polite, precise and brief. "
) * 3
QUESTIONS = [
    "When does the library close on Saturday?",
    "How many books can I borrow?",
    "Where is the reading room?",
    "Is printing free?",
]


def prompt_for(loaded, question: str, system: str = SYSTEM) -> list[int]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return loaded.tokenize(loaded.render_chat(messages).prompt, True, True)


def chat(loaded, messages: list[dict[str, str]]) -> list[int]:
    return loaded.tokenize(loaded.render_chat(messages).prompt, True, True)


def run_one(loaded, tokens: list[int], **opts) -> tuple[str, Completion]:
    parts: list[str] = []
    final = None
    for item in generate_sync(loaded, tokens, GenerationOptions(**opts)):
        if isinstance(item, Completion):
            final = item
        else:
            parts.append(item.text)
    assert final is not None
    return "".join(parts), final


async def _stream(
    loaded, tokens: list[int], opts: dict, cancel_after: int | None = None
) -> tuple[str, Completion | None]:
    parts: list[str] = []
    final = None
    agen = generate(loaded, tokens, GenerationOptions(**opts))
    async for item in agen:
        if isinstance(item, Chunk):
            parts.append(item.text)
            if cancel_after is not None and len(parts) >= cancel_after:
                await agen.aclose()
                break
        else:
            final = item
    return "".join(parts), final


def run_together(loaded, prompts: list[list[int]], opts: list[dict], cancel: dict[int, int] | None = None):
    cancel = cancel or {}

    async def main():
        pairs = enumerate(zip(prompts, opts, strict=True))
        return await asyncio.gather(*(_stream(loaded, p, o, cancel.get(i)) for i, (p, o) in pairs))

    return asyncio.run(main())


def common_len(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def plain_then_spec(loaded, tokens: list[int], draft_max: int, **opts) -> tuple[str, str, Completion, dict]:
    """The same request without drafts, then with `draft_max`: (plain text, speculative text, the
    speculative Completion, how much the engine's counters moved during the speculative one)."""
    plain, _ = run_one(loaded, tokens, draft_max=0, **opts)
    before = loaded.engine.stats()
    spec, final = run_one(loaded, tokens, draft_max=draft_max, **opts)
    after = loaded.engine.stats()
    counters = ("draft_tokens", "draft_accepted", "draft_decodes", "decode_calls")
    return plain, spec, final, {k: after[k] - before[k] for k in counters}


def test_arrivals_with_one_prefix_evaluate_it_once_and_match_unshared_output(smollm2_path):
    # a KV stream per slot: sharing copies the stream, and greedy output is batch-invariant
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=3, batch_invariant=True)
    try:
        prompts = [prompt_for(loaded, q, SYSTEM[: len(SYSTEM) * 2 // 3]) for q in QUESTIONS[:3]]
        prefix = min(common_len(prompts[0], p) for p in prompts[1:])
        assert prefix > 150
        opts = dict(num_predict=12, **GREEDY)
        alone = [run_one(loaded, p, cache_prompt=False, **opts)[0] for p in prompts]
        fresh = [
            prompt_for(loaded, q, "Today is Monday. " + SYSTEM[: len(SYSTEM) * 2 // 3]) for q in QUESTIONS[:3]
        ]
        fresh_prefix = min(common_len(fresh[0], p) for p in fresh[1:])
        before = loaded.engine.stats()
        results = run_together(loaded, fresh, [opts] * 3)
        after = loaded.engine.stats()
        evaluated = after["prompt_evaluated"] - before["prompt_evaluated"]
        suffixes = sum(len(p) - fresh_prefix for p in fresh)
        # one prefix + three suffixes (plus slack for where the shared prefixes end)
        assert evaluated <= fresh_prefix + suffixes + 16, (evaluated, fresh_prefix, suffixes)
        assert after["prompt_shared"] - before["prompt_shared"] >= 2 * (fresh_prefix - 8)
        # the same three, now against the references (their prefix is shared from the slots too)
        results = run_together(loaded, prompts, [opts] * 3)
        assert [text for text, _ in results] == alone
        assert all(f is not None and f.cached_tokens >= prefix - 8 for _, f in results)
    finally:
        loaded.close()


def _first_token_logprob(loaded, tokens: list[int], **opts) -> dict[int, float]:
    lps: dict[int, float] = {}
    for item in generate_sync(
        loaded, tokens, GenerationOptions(num_predict=1, top_logprobs=5, **GREEDY, **opts)
    ):
        if isinstance(item, Chunk) and item.logprobs:
            lps = {tok: lp for tok, _, lp in item.logprobs[0].top}
    return lps


def test_cancel_and_context_shift_of_one_slot_leave_the_shared_prefix_intact(smollm2_path):
    # the unified pool: slots share the prefix's cells, nothing is copied
    loaded = load_model(smollm2_path, num_ctx=512, num_parallel=3, batch_invariant=True, kv_unified=True)
    try:
        prompts = [prompt_for(loaded, q) for q in QUESTIONS[:3]]
        prefix = min(common_len(prompts[0], p) for p in prompts[1:])
        assert prefix > 300 and max(len(p) for p in prompts) < 400
        before = loaded.engine.stats()
        # A runs far past num_ctx (context shifts, num_keep 4: the shift's range crosses the shared
        # prefix), B is cancelled after a few chunks, C answers
        shifting = dict(num_predict=200, ignore_eos=True, **GREEDY)
        results = run_together(
            loaded,
            prompts,
            [shifting, dict(num_predict=200, **GREEDY), dict(num_predict=16, **GREEDY)],
            cancel={1: 3},
        )
        after = loaded.engine.stats()
        final_a, final_c = results[0][1], results[2][1]
        assert final_a is not None and final_a.eval_count == 200 and final_a.raw["context_shifts"] >= 1
        assert final_c is not None
        # the prefix was evaluated once for the three of them
        assert (
            after["prompt_evaluated"] - before["prompt_evaluated"]
            <= prefix + sum(len(p) - prefix for p in prompts) + 16
        )
        # C's cells (its prompt, the shared prefix included, plus its answer) are still right after
        # A's shifts: its next token from the cache has the logprobs of a full re-evaluation
        history = final_c.context
        cached = _first_token_logprob(loaded, history)
        fresh = _first_token_logprob(loaded, history, cache_prompt=False)
        best = max(fresh, key=fresh.__getitem__)
        # (the unified pool rounds by cell layout: ~0.05-0.15 here; moved cells shift RoPE positions
        # of a third of the prompt)
        assert max(cached, key=cached.__getitem__) == best, (cached, fresh)
        assert abs(cached[best] - fresh[best]) < 0.25, (cached, fresh)
    finally:
        loaded.close()


def test_sharing_off_evaluates_every_prompt(smollm2_path):
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=2, share_prefix=False, cache_ram_mib=0)
    try:
        prompts = [prompt_for(loaded, q) for q in QUESTIONS[:2]]
        before = loaded.engine.stats()
        run_together(loaded, prompts, [dict(num_predict=4, **GREEDY)] * 2)
        after = loaded.engine.stats()
        assert after["prompt_shared"] == before["prompt_shared"]
        assert after["prompt_evaluated"] - before["prompt_evaluated"] == sum(len(p) for p in prompts)
    finally:
        loaded.close()


def test_ram_cache_restores_a_returning_conversation(smollm2_path):
    # one slot: every new conversation evicts the previous one's cells into the RAM cache
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=1, batch_invariant=True, share_prefix=False)
    try:
        opts = dict(num_predict=16, **GREEDY)
        first = {"role": "user", "content": "About apples. " + SYSTEM[:600] + " Describe a red apple."}
        a1 = chat(loaded, [first])
        text_a1, _ = run_one(loaded, a1, **opts)
        run_one(loaded, chat(loaded, [{"role": "user", "content": "About whales. " + SYSTEM[:600]}]), **opts)
        before = loaded.engine.stats()
        stats = before["prompt_cache"]
        assert stats["saves"] >= 1 and stats["bytes"] > 0 and stats["entries"] >= 1
        a2 = chat(
            loaded,
            [first, {"role": "assistant", "content": text_a1}, {"role": "user", "content": "And green?"}],
        )
        held = common_len(a1, a2)
        assert held > 100
        text_a2, final = run_one(loaded, a2, **opts)
        after = loaded.engine.stats()
        assert after["prompt_cache"]["hits"] == stats["hits"] + 1
        assert after["prompt_restored"] - before["prompt_restored"] >= held
        assert final.cached_tokens >= held  # restored, not re-evaluated
        assert final.prompt_eval_count == len(a2) - final.cached_tokens
        assert text_a2 == run_one(loaded, a2, cache_prompt=False, **opts)[0]
    finally:
        loaded.close()


def test_ram_cache_keeps_the_conversation_a_restore_displaces(smollm2_path):
    """Two conversations alternating over one slot: each return restores its state from the RAM
    cache, and the restore saves the conversation it displaces first (a restore used to skip that
    save when the restored prefix was about as long as the slot's cells, so every second return
    was a full prefill)."""
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=1, batch_invariant=True, share_prefix=False)
    try:
        opts = dict(num_predict=8, **GREEDY)
        convs = [
            [{"role": "user", "content": f"About {topic}. " + SYSTEM[:600]}] for topic in ("apples", "whales")
        ]
        for turn in range(3):
            for conv in convs:
                tokens = chat(loaded, conv)
                before = loaded.engine.stats()
                text, final = run_one(loaded, tokens, **opts)
                after = loaded.engine.stats()
                if turn:  # a returning conversation: restored, only the new turn evaluated
                    assert after["prompt_cache"]["hits"] == before["prompt_cache"]["hits"] + 1, (turn, conv)
                    assert final.prompt_eval_count < 40
                conv += [{"role": "assistant", "content": text}, {"role": "user", "content": f"More {turn}."}]
    finally:
        loaded.close()


def test_ram_cache_is_bounded_and_evicts_least_recently_used(smollm2_path):
    # ~23 KB of KV per SmolLM2 token: a 3 MiB cache holds one ~100-token conversation, not two
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=1, cache_ram_mib=3)
    try:
        for i in range(4):
            tokens = chat(loaded, [{"role": "user", "content": f"Topic {i}. " + SYSTEM[:400]}])
            run_one(loaded, tokens, num_predict=2, **GREEDY)
        st = loaded.engine.stats()["prompt_cache"]
        assert st["limit_bytes"] == 3 * 1024 * 1024
        assert st["saves"] >= 3
        assert 0 < st["bytes"] <= st["limit_bytes"]
        assert st["evictions"] >= 1
    finally:
        loaded.close()


def test_ram_cache_off(smollm2_path):
    loaded = load_model(smollm2_path, num_ctx=512, num_parallel=1, cache_ram_mib=0)
    try:
        for q in QUESTIONS[:2]:
            run_one(loaded, prompt_for(loaded, q), num_predict=2, **GREEDY)
        st = loaded.engine.stats()["prompt_cache"]
        assert st["saves"] == 0 and st["bytes"] == 0
    finally:
        loaded.close()


def test_speculative_greedy_output_equals_plain_and_drafts_are_accepted(smollm2_path):
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=2, batch_invariant=True)
    try:
        tokens = chat(loaded, [{"role": "user", "content": EDIT_PROMPT}])
        opts = dict(num_predict=64, **GREEDY)
        plain, spec, final, moved = plain_then_spec(loaded, tokens, 16, cache_prompt=False, **opts)
        assert spec == plain
        assert moved["draft_tokens"] > 0 and moved["draft_accepted"] > 0
        # drafts kept: fewer decodes than generated tokens
        assert moved["decode_calls"] < final.eval_count
        # and beside another slot (one batch for both), still the same answer
        results = run_together(
            loaded,
            [tokens, prompt_for(loaded, QUESTIONS[0])],
            [dict(draft_max=16, cache_prompt=False, **opts), dict(num_predict=32, draft_max=0, **GREEDY)],
        )
        assert results[0][0] == plain
    finally:
        loaded.close()


def test_speculative_seeded_sampling_equals_plain(smollm2_path):
    """The acceptance rule: each produced token is one draw of the slot's sampler from the target's
    distribution at its position, so seeded sampling gives the plain output too (row-independent
    kernels: the logits do not depend on the draft riding in the batch)."""
    loaded = load_model(smollm2_path, num_ctx=1024, num_parallel=1, batch_invariant=True)
    try:
        tokens = chat(loaded, [{"role": "user", "content": EDIT_PROMPT}])
        opts = dict(num_predict=64, temperature=0.7, top_k=40, top_p=0.95, seed=1234, cache_prompt=False)
        plain, spec, _, moved = plain_then_spec(loaded, tokens, 8, **opts)
        assert moved["draft_tokens"] > 0
        assert spec == plain
    finally:
        loaded.close()


def test_draft_max_is_validated(smollm2):
    with pytest.raises(Exception, match="draft_max"):
        run_one(smollm2, [1, 2, 3], draft_max=65, num_predict=1)


def test_draft_max_is_a_request_option():
    from a3s_power.runtime.options import OptionTypeError, options_from_layers

    assert options_from_layers({}, {"draft_max": 8}).to_request([1]).draft_max == 8
    assert options_from_layers({}, {}).to_request([1]).draft_max == -1  # the server's default
    with pytest.raises(OptionTypeError, match='option "draft_max" must be of type integer'):
        options_from_layers({}, {"draft_max": "many"})


def test_draft_model_greedy_output_equals_plain(smollm2_path):
    """A draft model (here SmolLM2 itself: the same vocabulary; no smaller one exists here) drafts,
    the target verifies in its batch: greedy output equals plain decoding, drafts are accepted,
    and beside another slot it is still the same answer."""
    loaded = load_model(
        smollm2_path, num_ctx=1024, num_parallel=2, batch_invariant=True, draft_path=smollm2_path
    )
    try:
        assert loaded.engine.has_draft_model
        tokens = chat(loaded, [{"role": "user", "content": "Explain in two sentences why the sky is blue."}])
        opts = dict(num_predict=48, **GREEDY)
        plain, spec, final, moved = plain_then_spec(loaded, tokens, 4, cache_prompt=False, **opts)
        assert spec == plain
        assert moved["draft_decodes"] > 0
        drafted, accepted = moved["draft_tokens"], moved["draft_accepted"]
        assert drafted > 0 and accepted > drafted // 2  # the same model: most drafts are kept
        assert moved["decode_calls"] < final.eval_count
        # the model's default length (draft_max unset) drafts too; beside another slot, same answer
        results = run_together(
            loaded,
            [tokens, prompt_for(loaded, QUESTIONS[0])],
            [dict(cache_prompt=False, **opts), dict(num_predict=32, draft_max=0, **GREEDY)],
        )
        assert results[0][0] == plain
    finally:
        loaded.close()


def test_draft_model_with_another_vocabulary_is_a_clear_error(smollm2_path, gemma3_path):
    from a3s_power.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="vocabulary does not match"):
        load_model(smollm2_path, num_ctx=512, draft_path=gemma3_path)
