"""Images on every surface of a live server, through the one chat pipeline, with the official SDKs:
Ollama (/api/chat, /api/generate `images`), OpenAI chat `image_url` parts, Responses `input_image`,
Anthropic `image` blocks. The model pair is real (SmolLM2-135M + the tiny seeded projector)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import anthropic
import httpx
import ollama
import openai
import pytest
from live_server import LiveServer

from conftest import TEXT_MODEL, VISION_MODEL
from fixtures.vlm import N_IMAGE_TOKENS, sample_image

pytestmark = pytest.mark.timeout(300)
QUESTION = "What is in this picture?"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{_b64(data)}"


@pytest.fixture(scope="module")
def oai(vision_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=vision_server.url + "/v1", api_key="unused", timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def claude(vision_server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=vision_server.url, api_key="unused", timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def olla(vision_server: LiveServer) -> ollama.Client:
    return ollama.Client(host=vision_server.url, timeout=120)


def _ollama_chat(olla: ollama.Client, images: list[bytes], model: str = VISION_MODEL):  # type: ignore[no-untyped-def]
    return olla.chat(
        model=model,
        messages=[{"role": "user", "content": QUESTION, "images": images}],
        options={"temperature": 0, "num_predict": 8},
    )


# -- Ollama -------------------------------------------------------------------------------------
def test_ollama_chat_images(olla: ollama.Client) -> None:
    plain = _ollama_chat(olla, [])
    a1 = _ollama_chat(olla, [sample_image(1)])
    a2 = _ollama_chat(olla, [sample_image(1)])
    two = _ollama_chat(olla, [sample_image(1), sample_image(2)])
    total = lambda r: r.prompt_eval_count  # noqa: E731  (Ollama's count: evaluated + reused)
    assert total(a1) - total(plain) == N_IMAGE_TOKENS
    assert total(two) - total(plain) == 2 * N_IMAGE_TOKENS
    assert a1.message.content == a2.message.content and a1.message.content
    assert a2.prompt_eval_duration > 0


def test_ollama_generate_images_and_data_uri(vision_server: LiveServer) -> None:
    body = {"model": VISION_MODEL, "prompt": QUESTION, "stream": False,
            "options": {"temperature": 0, "num_predict": 6}}  # fmt: skip
    plain = httpx.post(vision_server.url + "/api/generate", json=body, timeout=120).json()
    raw = httpx.post(vision_server.url + "/api/generate", json={**body, "images": [_b64(sample_image(3))]},
                     timeout=120).json()  # fmt: skip
    uri = httpx.post(vision_server.url + "/api/generate",
                     json={**body, "images": [_data_url(sample_image(3))]}, timeout=120).json()  # fmt: skip
    assert raw["prompt_eval_count"] - plain["prompt_eval_count"] == N_IMAGE_TOKENS
    assert uri["response"] == raw["response"]  # a data: prefix is the same picture


# -- OpenAI -------------------------------------------------------------------------------------
def _oai_chat(oai: openai.OpenAI, image: bytes | None, model: str = VISION_MODEL):  # type: ignore[no-untyped-def]
    content: list[dict[str, object]] = [{"type": "text", "text": QUESTION}]
    if image is not None:
        content.append({"type": "image_url", "image_url": {"url": _data_url(image)}})
    return oai.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}],  # type: ignore[list-item,misc]
        temperature=0, max_tokens=6, logprobs=True, top_logprobs=2,
    )  # fmt: skip


def test_openai_chat_image_url(oai: openai.OpenAI) -> None:
    plain = _oai_chat(oai, None)
    one = _oai_chat(oai, sample_image(4))
    other = _oai_chat(oai, sample_image(5))
    assert plain.usage and one.usage and other.usage
    assert one.usage.prompt_tokens - plain.usage.prompt_tokens == N_IMAGE_TOKENS
    lp = lambda r: [(t.token, round(t.logprob, 5)) for t in r.choices[0].logprobs.content]  # noqa: E731
    assert lp(one) != lp(other)


def test_responses_input_image(oai: openai.OpenAI) -> None:
    def ask(image: bytes | None):  # type: ignore[no-untyped-def]
        content: list[dict[str, object]] = [{"type": "input_text", "text": QUESTION}]
        if image is not None:
            content.append({"type": "input_image", "image_url": _data_url(image), "detail": "auto"})
        return oai.responses.create(model=VISION_MODEL, input=[{"role": "user", "content": content}],  # type: ignore[list-item,misc]
                                    temperature=0, max_output_tokens=6)  # fmt: skip

    plain, one = ask(None), ask(sample_image(6))
    assert plain.usage and one.usage
    assert one.usage.input_tokens - plain.usage.input_tokens == N_IMAGE_TOKENS
    assert one.output_text


# -- Anthropic ----------------------------------------------------------------------------------
def test_anthropic_image_block(claude: anthropic.Anthropic) -> None:
    def ask(image: bytes | None):  # type: ignore[no-untyped-def]
        content: list[dict[str, object]] = []
        if image is not None:
            content.append({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                        "data": _b64(image)}})  # fmt: skip
        content.append({"type": "text", "text": QUESTION})
        return claude.messages.create(
            model=VISION_MODEL,
            max_tokens=6,
            extra_body={"temperature": 0},
            messages=[{"role": "user", "content": content}],
        )  # type: ignore[list-item,misc]

    plain, one = ask(None), ask(sample_image(8))
    total = lambda u: u.input_tokens + (u.cache_read_input_tokens or 0)  # noqa: E731  (reads are apart)
    assert total(one.usage) - total(plain.usage) == N_IMAGE_TOKENS
    assert one.content and one.content[0].type == "text"


# -- a model without a projector: Ollama's text on every envelope ------------------------------
def test_no_projector_is_refused_on_every_surface(
    olla: ollama.Client, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    want = f'"{TEXT_MODEL}" does not support vision'
    with pytest.raises(ollama.ResponseError) as ol:
        _ollama_chat(olla, [sample_image(1)], TEXT_MODEL)
    assert ol.value.status_code == 400 and want in str(ol.value.error)
    with pytest.raises(openai.BadRequestError) as oe:
        _oai_chat(oai, sample_image(1), TEXT_MODEL)
    assert want in str(oe.value)
    image_part = {"type": "input_image", "image_url": _data_url(sample_image(1)), "detail": "auto"}
    with pytest.raises(openai.BadRequestError) as re_:
        oai.responses.create(model=TEXT_MODEL, input=[{"role": "user", "content": [image_part]}])  # type: ignore[list-item,misc]
    assert want in str(re_.value)
    block = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": _b64(sample_image(1))},
    }
    with pytest.raises(anthropic.BadRequestError) as ae:
        claude.messages.create(
            model=TEXT_MODEL, max_tokens=4, messages=[{"role": "user", "content": [block]}]
        )  # type: ignore[list-item,misc]
    assert want in str(ae.value)


# -- bad images: 400s saying which image and why, the server alive afterwards -------------------
def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height (a decompression bomb's shape)."""
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def _encoded(fmt: str, size: tuple[int, int] = (8, 8)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, format=fmt)
    return buf.getvalue()


BAD_IMAGES = {
    "not base64": ("!!! not base64 !!!", "image 1: invalid base64"),
    "empty": ("", "image 1: the image is empty"),
    "not an image": (_b64(b"hello, this is not a picture at all"), "image 1: the data is not an image"),
    "truncated png": (_b64(sample_image(1)[:200]), "image 1: the image is corrupt or truncated"),
    "tiff": (_b64(_encoded("TIFF")), "image 1: unsupported image format TIFF"),
    "absurd dimensions": (
        _b64(_png_claiming(200_000, 200_000)),
        "image 1: the image's dimensions are too large",
    ),
    "too wide": (_b64(_encoded("PNG", (16385, 1))), "image 1: the image is 16385x1"),
    "data url not base64": ("data:image/png,abc", "image 1: a data URL must be base64"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_400s(vision_server: LiveServer, case: str) -> None:
    image, message = BAD_IMAGES[case]
    body = {
        "model": VISION_MODEL,
        "stream": False,
        "messages": [{"role": "user", "content": "hi", "images": [image]}],
    }
    resp = httpx.post(vision_server.url + "/api/chat", json=body, timeout=60)
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["error"]
    assert httpx.get(vision_server.url + "/api/version", timeout=10).status_code == 200


def test_the_second_bad_image_is_named_and_the_server_lives(
    vision_server: LiveServer, oai: openai.OpenAI
) -> None:
    content = [{"type": "image_url", "image_url": {"url": _data_url(sample_image(1))}},
               {"type": "image_url", "image_url": {"url": _data_url(b"GIF89a broken")}}]  # fmt: skip
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model=VISION_MODEL, messages=[{"role": "user", "content": content}])  # type: ignore[list-item,misc]
    assert "image 2:" in str(exc.value)
    with pytest.raises(openai.BadRequestError, match="A3S_POWER_IMAGE_URLS is off"):
        oai.chat.completions.create(model=VISION_MODEL, messages=[{"role": "user", "content": [  # type: ignore[list-item,misc]
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/cat.png"}}]}])  # fmt: skip
    assert _oai_chat(oai, sample_image(2)).choices[0].message.content is not None


# -- store, show, ps, metrics -------------------------------------------------------------------
def test_show_ps_and_metrics(
    vision_server: LiveServer, olla: ollama.Client, mmproj_path, smollm2_path
) -> None:  # type: ignore[no-untyped-def]
    shown = httpx.post(vision_server.url + "/api/show", json={"model": VISION_MODEL}, timeout=30).json()
    assert "vision" in shown["capabilities"]
    assert shown["projector_info"]["clip.projector_type"] == "mlp"
    assert (
        "vision"
        not in httpx.post(vision_server.url + "/api/show", json={"model": TEXT_MODEL}).json()["capabilities"]
    )
    _ollama_chat(olla, [sample_image(11)])
    ps = httpx.get(vision_server.url + "/api/ps", timeout=10).json()["models"]
    entry = next(m for m in ps if m["name"].startswith(VISION_MODEL))
    assert entry["size"] >= smollm2_path.stat().st_size + mmproj_path.stat().st_size
    text = httpx.get(vision_server.url + "/metrics", timeout=10).text
    count = [ln for ln in text.splitlines() if ln.startswith("a3s_power_image_encode_seconds_count")]
    assert count and float(count[0].split()[-1]) >= 1


def test_modelfile_second_from_is_the_projector(
    vision_server: LiveServer, smollm2_path, mmproj_path, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """`FROM ./model.gguf` + `FROM ./mmproj.gguf`, as Ollama's vision Modelfiles: the second is the
    projector layer, and the created model takes images."""
    import shutil

    from a3s_power.store.create import create_events, stage_modelfile_request
    from a3s_power.store.manifest import MEDIA_PROJECTOR
    from a3s_power.store.modelfile import build_request, parse_modelfile

    shutil.copy(smollm2_path, tmp_path / "model.gguf")
    shutil.copy(mmproj_path, tmp_path / "mmproj.gguf")
    modelfile = parse_modelfile("FROM ./model.gguf\nFROM ./mmproj.gguf\nPARAMETER stop <|im_end|>\n")
    request = stage_modelfile_request(
        vision_server.store, "smol-vision-mf", build_request(modelfile, tmp_path)
    )
    for _ in create_events(vision_server.store, request):
        pass
    _, manifest = vision_server.store.read_manifest("smol-vision-mf")
    assert [layer.media_type for layer in manifest.layers].count(MEDIA_PROJECTOR) == 1
    message = {"role": "user", "content": "hi", "images": [_b64(sample_image(3))]}
    body = {"model": "smol-vision-mf", "stream": False, "options": {"num_predict": 2}, "messages": [message]}
    reply = httpx.post(vision_server.url + "/api/chat", timeout=120, json=body).json()
    assert reply["prompt_eval_count"] >= N_IMAGE_TOKENS


def test_a_vision_model_gets_at_least_2048_context(vision_server: LiveServer, olla: ollama.Client) -> None:
    """Ollama's scheduler raises num_ctx to 2048 for a model with a projector (room for images);
    a text model keeps the small context it asked for."""
    for model, expected in ((VISION_MODEL, 2048), (TEXT_MODEL, 256)):
        olla.chat(
            model=model,
            messages=[{"role": "user", "content": QUESTION}],
            options={"temperature": 0, "num_predict": 2, "num_ctx": 256},
        )
        ps = httpx.get(vision_server.url + "/api/ps", timeout=10).json()["models"]
        entry = next(m for m in ps if m["name"].startswith(model))
        assert entry["context_length"] == expected, (model, entry)
    olla.chat(  # and it still takes pictures there
        model=VISION_MODEL,
        messages=[{"role": "user", "content": QUESTION, "images": [sample_image(12)]}],
        options={"temperature": 0, "num_predict": 2, "num_ctx": 256},
    )
