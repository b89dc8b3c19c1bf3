"""M-RoPE vision on real computation: the tiny seeded qwen2vl language model + qwen2vl_merger projector
of tests/fixtures/mrope_vlm.py, run through llama.cpp's mtmd. An image's chunk takes n_tokens KV
cells but advances the position by only n_pos (mtmd_input_chunk_get_n_pos); the text after it, the
generated tokens, prefix reuse on a second turn and concurrent slots must all follow that."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from a3s_power.runtime.generation import Chunk, Completion, GenerationOptions, generate_sync
from a3s_power.runtime.media import MEDIA_MARKER, decode_image
from fixtures.mrope_vlm import image_tokens, mrope_pair
from fixtures.vlm import sample_image

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def mvlm() -> Iterator[object]:
    from a3s_power.runtime import load_model

    text, proj = mrope_pair()
    loaded = load_model(
        text, num_ctx=1024, num_parallel=4, projector_path=proj, batch_invariant=True, num_thread=2
    )
    yield loaded
    loaded.close()


def _prompt(m, images: list[bytes], question: str = "What is in this picture?"):  # type: ignore[no-untyped-def]
    content = MEDIA_MARKER * len(images) + question
    text = f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
    return m.projector.tokenize(text, [decode_image(b, i).native() for i, b in enumerate(images)], True, True)


def _run(m, media, *, n: int = 8, cache: bool = True):  # type: ignore[no-untyped-def]
    opts = GenerationOptions(num_predict=n, temperature=0.0, top_logprobs=3, cache_prompt=cache)
    text, logprobs, end = "", [], None
    for item in generate_sync(m, [], opts, media):
        if isinstance(item, Chunk):
            text += item.text
            logprobs += [(lp.token, round(lp.logprob, 6)) for lp in item.logprobs or []]
        elif isinstance(item, Completion):
            end = item
    assert end is not None
    return text, logprobs, end


def _pos_delta(media) -> int:  # type: ignore[no-untyped-def]
    return sum(n_tokens - n_pos for _, n_tokens, n_pos, _ in media.spans)


def _assert_positions(end: Completion, delta: int) -> None:
    """The slot's next position is its cache length less what the images did not advance, and the
    KV sequence really ends one before it (the text after the image sat at n_past + n_pos)."""
    raw = end.raw
    assert raw["next_pos"] == raw["n_cached"] - delta
    assert raw["kv_pos_max"] == raw["next_pos"] - 1


def test_the_pair_loads_as_mrope_and_an_image_advances_by_n_pos(mvlm) -> None:  # type: ignore[no-untyped-def]
    assert mvlm.projector is not None and mvlm.projector.vision and mvlm.projector.mrope
    media = _prompt(mvlm, [sample_image(1, size=48)])
    ((start, n_tokens, n_pos, _),) = media.spans
    assert (n_tokens, n_pos) == image_tokens(48, 48) == (9, 3)
    assert list(media.tokens[start : start + n_tokens]) == [-1] * n_tokens
    wide = _prompt(mvlm, [sample_image(2, size=64)])
    ((_, n_tokens, n_pos, _),) = wide.spans
    assert (n_tokens, n_pos) == image_tokens(64, 64) == (16, 4)


def test_text_and_generation_after_an_image_take_the_positions_mtmd_reports(mvlm) -> None:  # type: ignore[no-untyped-def]
    media = _prompt(mvlm, [sample_image(1)])
    text, _, end = _run(mvlm, media, n=6, cache=False)
    assert end.done_reason == "length" and end.eval_count == 6 and text
    assert end.prompt_eval_count == len(media.tokens)  # image tokens count, as Ollama reports them
    assert end.raw["n_cached"] >= len(media.tokens)
    _assert_positions(end, _pos_delta(media))
    assert end.raw["next_pos"] < end.raw["n_cached"]  # M-RoPE: positions are not cache cells
    two = _prompt(mvlm, [sample_image(1), sample_image(2, size=64)])
    _, _, end2 = _run(mvlm, two, n=4, cache=False)
    assert _pos_delta(two) == (9 - 3) + (16 - 4)
    _assert_positions(end2, _pos_delta(two))


def test_the_same_image_repeats_and_different_images_differ(mvlm) -> None:  # type: ignore[no-untyped-def]
    a1 = _run(mvlm, _prompt(mvlm, [sample_image(1)]), cache=False)
    b = _run(mvlm, _prompt(mvlm, [sample_image(2)]), cache=False)
    a2 = _run(mvlm, _prompt(mvlm, [sample_image(1)]), cache=False)
    assert a1[:2] == a2[:2]
    assert a1[1] != b[1]


def test_a_second_turn_reuses_the_prefix_and_keeps_positions(mvlm) -> None:  # type: ignore[no-untyped-def]
    image = sample_image(7)
    first_text, _, first = _run(mvlm, _prompt(mvlm, [image], "Describe it."))
    turn1 = (
        f"<|im_start|>user\n{MEDIA_MARKER}Describe it.<|im_end|>\n"
        f"<|im_start|>assistant\n{first_text}<|im_end|>\n"
    )
    turn2 = turn1 + "<|im_start|>user\nAnd its colour?<|im_end|>\n<|im_start|>assistant\n"
    media = mvlm.projector.tokenize(turn2, [decode_image(image).native()], True, True)
    _, _, second = _run(mvlm, media)
    assert first.media_chunks == 1 and second.media_chunks == 0  # not encoded again
    assert second.cached_tokens >= first.prompt_tokens - 1
    assert second.prompt_eval_count < len(media.tokens) - image_tokens(48, 48)[0]
    _assert_positions(second, _pos_delta(media))


def test_concurrent_mrope_requests_equal_their_solo_runs(mvlm) -> None:  # type: ignore[no-untyped-def]
    prompts = [_prompt(mvlm, [sample_image(200 + i)]) for i in range(3)]
    prompts.append(_prompt(mvlm, [], "Count from one to ten."))
    solo = [_run(mvlm, p, cache=False)[:2] for p in prompts]
    results: dict[int, tuple[str, list[tuple[int, float]]]] = {}

    def worker(i: int) -> None:
        results[i] = _run(mvlm, prompts[i], cache=False)[:2]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert [results[i] for i in range(len(prompts))] == solo
