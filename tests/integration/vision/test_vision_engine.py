"""Vision in the engine, on real computation: SmolLM2-135M + a tiny seeded LLaVA-style projector run
through llama.cpp's mtmd (image tokenized with mtmd_tokenize, encoded and decoded on the decode
thread). Batch-invariant mode, so concurrent runs can be compared bit for bit with solo runs."""

from __future__ import annotations

import threading
import time

import pytest

from a3s_power.runtime.generation import Chunk, Completion, GenerationOptions, generate_sync
from a3s_power.runtime.media import MEDIA_MARKER, decode_image
from fixtures.vlm import N_IMAGE_TOKENS, sample_image

pytestmark = pytest.mark.timeout(300)


def _prompt(vlm, images: list[bytes], question: str = "What is in this picture?"):  # type: ignore[no-untyped-def]
    content = MEDIA_MARKER * len(images) + question
    text = f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
    return vlm.projector.tokenize(
        text, [decode_image(b, i).native() for i, b in enumerate(images)], True, True
    )


def _run(vlm, media, *, n: int = 8, cache: bool = True, cancel: bool = False):  # type: ignore[no-untyped-def]
    opts = GenerationOptions(num_predict=n, temperature=0.0, top_logprobs=3, cache_prompt=cache)
    text, logprobs, end = "", [], None
    gen = generate_sync(vlm, [], opts, media)
    for item in gen:
        if isinstance(item, Chunk):
            text += item.text
            logprobs += [(lp.token, round(lp.logprob, 6)) for lp in item.logprobs or []]
            if cancel:
                gen.close()
                break
        elif isinstance(item, Completion):
            end = item
    return text, logprobs, end


def test_projector_loads_through_mtmd(vlm) -> None:  # type: ignore[no-untyped-def]
    assert vlm.projector is not None and vlm.projector.vision and not vlm.projector.mrope
    media = _prompt(vlm, [sample_image(1)])
    assert media.n_media_tokens == N_IMAGE_TOKENS
    ((start, n_tokens, n_pos, digest),) = media.spans
    assert n_tokens == n_pos == N_IMAGE_TOKENS
    assert list(media.tokens[start : start + n_tokens]) == [-1] * N_IMAGE_TOKENS
    import hashlib

    assert digest == hashlib.sha256(sample_image(1)).hexdigest()


def test_image_adds_its_tokens_to_the_prompt(vlm) -> None:  # type: ignore[no-untyped-def]
    _, _, plain = _run(vlm, _prompt(vlm, []), cache=False)
    _, _, one = _run(vlm, _prompt(vlm, [sample_image(1)]), cache=False)
    _, _, two = _run(vlm, _prompt(vlm, [sample_image(1), sample_image(2)]), cache=False)
    assert one.prompt_eval_count - plain.prompt_eval_count == N_IMAGE_TOKENS
    assert two.prompt_eval_count - plain.prompt_eval_count == 2 * N_IMAGE_TOKENS
    assert one.media_tokens == N_IMAGE_TOKENS and one.media_chunks == 1
    assert 0 < one.media_encode_duration <= one.prompt_eval_duration


def test_different_images_differ_and_the_same_image_repeats(vlm) -> None:  # type: ignore[no-untyped-def]
    a1 = _run(vlm, _prompt(vlm, [sample_image(1)]), cache=False)
    b = _run(vlm, _prompt(vlm, [sample_image(2)]), cache=False)
    a2 = _run(vlm, _prompt(vlm, [sample_image(1)]), cache=False)
    assert a1[:2] == a2[:2]  # text and logprobs identical
    assert a1[1] != b[1]  # the picture changes the distribution


def test_second_turn_on_the_same_image_reuses_the_cache(vlm) -> None:  # type: ignore[no-untyped-def]
    image = sample_image(7)
    first_text, _, first = _run(vlm, _prompt(vlm, [image], "Describe it."))
    turn1 = (
        f"<|im_start|>user\n{MEDIA_MARKER}Describe it.<|im_end|>\n"
        f"<|im_start|>assistant\n{first_text}<|im_end|>\n"
    )
    turn2 = turn1 + "<|im_start|>user\nAnd its colour?<|im_end|>\n<|im_start|>assistant\n"
    media = vlm.projector.tokenize(turn2, [decode_image(image).native()], True, True)
    _, _, second = _run(vlm, media)
    assert first.media_chunks == 1
    assert second.media_chunks == 0  # the image was not encoded again
    assert second.cached_tokens >= first.prompt_tokens - 1
    assert second.prompt_eval_count < len(media.tokens) - N_IMAGE_TOKENS


def test_concurrent_image_requests_equal_their_solo_runs(vlm) -> None:  # type: ignore[no-untyped-def]
    images = [sample_image(100 + i) for i in range(4)]
    solo = [_run(vlm, _prompt(vlm, [im]), cache=False)[:2] for im in images]
    results: dict[int, tuple[str, list[tuple[int, float]]]] = {}

    def worker(i: int) -> None:
        results[i] = _run(vlm, _prompt(vlm, [images[i]]), cache=False)[:2]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert [results[i] for i in range(4)] == solo
    assert len({tuple(lp) for _, lp in solo}) == 4  # four pictures, four distributions


def test_a_text_stream_keeps_decoding_beside_image_prefill(vlm) -> None:  # type: ignore[no-untyped-def]
    text_media = _prompt(vlm, [], "Count from one to fifty in words.")
    solo_text = _run(vlm, text_media, n=48, cache=False)[:2]
    stamps: list[float] = []
    out: dict[str, object] = {}

    def text_worker() -> None:
        opts = GenerationOptions(num_predict=48, temperature=0.0, top_logprobs=3, cache_prompt=False)
        text, lps = "", []
        for item in generate_sync(vlm, [], opts, text_media):
            if isinstance(item, Chunk):
                stamps.append(time.monotonic())
                text += item.text
                lps += [(lp.token, round(lp.logprob, 6)) for lp in item.logprobs or []]
        out["text"] = (text, lps)

    t = threading.Thread(target=text_worker)
    t.start()
    while len(stamps) < 4:
        time.sleep(0.005)
    started = time.monotonic()
    image_result = _run(vlm, _prompt(vlm, [sample_image(5), sample_image(6)]), n=4, cache=False)
    finished = time.monotonic()
    t.join(timeout=240)
    assert out["text"] == solo_text  # unaffected by the image request beside it
    assert image_result[2] is not None and image_result[2].media_chunks == 2
    during = [s for s in stamps if started <= s <= finished]
    assert during, "the text stream produced no token while the image request ran"


def test_cancel_frees_the_slot(vlm) -> None:  # type: ignore[no-untyped-def]
    for _ in range(6):  # more than the slots: each cancelled one must have been freed
        _run(vlm, _prompt(vlm, [sample_image(9)]), n=200, cache=False, cancel=True)
    deadline = time.monotonic() + 30
    while vlm.stats().n_active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert vlm.stats().n_active == 0
    assert _run(vlm, _prompt(vlm, [sample_image(9)]), n=2)[2].done_reason == "length"


def test_cancel_during_image_prefill_frees_the_slot_at_the_next_chunk(vlm) -> None:  # type: ignore[no-untyped-def]
    """Media chunks are encoded one per engine step, so a request cancelled while its images are
    being encoded leaves at the next step instead of after the whole prefill."""
    from a3s_power.runtime.generation import _submit

    images = [sample_image(300 + i) for i in range(40)]  # 40 chunks, 640 image tokens
    opts = GenerationOptions(num_predict=1, temperature=0.0, cache_prompt=False)
    t0 = time.monotonic()
    _, _, solo = _run(vlm, _prompt(vlm, images), n=1, cache=False)
    full = time.monotonic() - t0  # the whole prefill of 40 images (plus one token)
    assert solo is not None and solo.media_chunks == len(images)

    channel = _submit(vlm, [], opts, _prompt(vlm, [sample_image(400 + i) for i in range(40)]))
    deadline = time.monotonic() + 30
    while vlm.stats().n_active == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(full / 10)  # well inside the prefill: a few chunks encoded, most still to go
    cancelled = time.monotonic()
    channel.cancel()
    while vlm.stats().n_active and time.monotonic() < deadline:
        time.sleep(0.001)
    freed = time.monotonic() - cancelled
    assert vlm.stats().n_active == 0
    assert freed < full / 2, f"slot freed {freed:.3f} s after cancel; a whole prefill takes {full:.3f} s"
    assert _run(vlm, _prompt(vlm, [sample_image(9)]), n=2)[2].done_reason == "length"


def test_a_prompt_with_images_longer_than_the_context_is_refused(smollm2_path, mmproj_path) -> None:  # type: ignore[no-untyped-def]
    from a3s_power.errors import InvalidRequest
    from a3s_power.runtime import load_model

    small = load_model(smollm2_path, num_ctx=32, num_parallel=1, projector_path=mmproj_path, num_thread=2)
    try:
        media = _prompt(small, [sample_image(1), sample_image(2)])
        with pytest.raises(InvalidRequest, match="images cannot be truncated"):
            _run(small, media)
        # a prompt that fits but whose reply would need a context shift stops with "length"
        _, _, end = _run(small, _prompt(small, [sample_image(1)], "Hi"), n=200)
        assert end.done_reason == "length" and end.raw["context_shifts"] == 0
    finally:
        small.close()
