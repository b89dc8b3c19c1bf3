from __future__ import annotations

import pytest

from a3s_power.store.errors import InvalidDigest, InvalidModelName
from a3s_power.store.names import (
    blob_filename,
    is_valid_name,
    normalize_digest,
    parse_name,
    short_digest,
)


@pytest.mark.parametrize(
    ("text", "parts", "shortest"),
    [
        ("llama3.2", ("registry.ollama.ai", "library", "llama3.2", "latest"), "llama3.2:latest"),
        ("llama3.2:1b", ("registry.ollama.ai", "library", "llama3.2", "1b"), "llama3.2:1b"),
        ("user/model:v1", ("registry.ollama.ai", "user", "model", "v1"), "user/model:v1"),
        (
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            ("hf.co", "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M"),
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        ),
        (
            "127.0.0.1:5000/library/foo:latest",
            ("127.0.0.1:5000", "library", "foo", "latest"),
            "127.0.0.1:5000/library/foo:latest",
        ),
        ("127.0.0.1:5000/library/foo", ("127.0.0.1:5000", "library", "foo", "latest"), None),
        ("registry.ollama.ai/library/qwen3:8b", ("registry.ollama.ai", "library", "qwen3", "8b"), "qwen3:8b"),
        ("REGISTRY.OLLAMA.AI/Library/Qwen3:8B", ("REGISTRY.OLLAMA.AI", "Library", "Qwen3", "8B"), "Qwen3:8B"),
    ],
)
def test_parse_and_display(text: str, parts: tuple[str, ...], shortest: str | None) -> None:
    name = parse_name(text)
    assert name.parts == parts
    if shortest is not None:
        assert name.display_shortest() == shortest


def test_scheme_is_kept_for_insecure_hosts() -> None:
    name = parse_name("http://127.0.0.1:5000/library/foo:bar")
    assert name.scheme == "http"
    assert name.parts == ("127.0.0.1:5000", "library", "foo", "bar")
    assert parse_name("foo").scheme == "https"


def test_case_insensitive_equality() -> None:
    assert parse_name("Llama3:Latest").key == parse_name("llama3").key
    assert parse_name("llama3:8b").key != parse_name("llama3").key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "../evil",
        "..",
        "a/../b",
        "model:../../etc",
        "ns.with.dot/model",
        "-leading-dash",
        "model:tag:extra/",
        "a/b/c/d",
        "name with space",
        "model:" + "t" * 81,
        "m" * 81,
        "ftp://host/ns/model",
        "host/ns/model:ta/g",
        "model:.hidden",
        "model@sha256",
    ],
)
def test_invalid_names(text: str) -> None:
    assert not is_valid_name(text)
    with pytest.raises(InvalidModelName, match="^invalid model name$"):
        parse_name(text)


def test_valid_edge_names() -> None:
    assert is_valid_name("m" * 80)
    assert is_valid_name("_private")
    assert is_valid_name("a" * 300 + ".com/ns/model")  # hosts may be long
    assert is_valid_name("model:v1.2-rc_3")


def test_digests() -> None:
    hex64 = "AB" * 32
    assert normalize_digest(f"sha256:{hex64}") == "sha256:" + hex64.lower()
    assert normalize_digest(f"sha256-{hex64}") == "sha256:" + hex64.lower()
    assert blob_filename(f"sha256:{hex64}") == "sha256-" + hex64.lower()
    assert short_digest(f"sha256:{hex64}") == hex64.lower()[:12]
    for bad in ["sha256:abc", "md5:" + "0" * 64, "sha256:../../" + "0" * 58, "sha256:" + "g" * 64, ""]:
        with pytest.raises(InvalidDigest, match="invalid digest format"):
            normalize_digest(bad)
