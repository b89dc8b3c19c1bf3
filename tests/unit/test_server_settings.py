"""Ollama's keep_alive durations, OLLAMA_HOST forms, and the options merge with its type rules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from a3s_power.config import Settings, parse_host
from a3s_power.durations import keep_alive_seconds, parse_go_duration
from a3s_power.errors import InvalidRequest
from a3s_power.runtime.options import OptionTypeError, merge_options


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1h30m", 5400), ("300ms", 0.3), ("0", 0), ("-1m", -60), ("1.5s", 1.5), ("2h", 7200)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("-1", 'time: missing unit in duration "-1"'),
        ("5x", 'time: invalid duration "5x"'),
        ("", 'time: invalid duration ""'),
    ],
)
def test_bad_go_durations(text: str, error: str) -> None:
    with pytest.raises(InvalidRequest, match=f"^{error}$".replace("(", r"\(")):
        parse_go_duration(text)


def test_keep_alive_values() -> None:
    assert keep_alive_seconds(30) == 30
    assert keep_alive_seconds(0) == 0
    assert keep_alive_seconds(-1) == math.inf
    assert keep_alive_seconds("-5m") == math.inf
    assert keep_alive_seconds("10m") == 600
    with pytest.raises(InvalidRequest):
        keep_alive_seconds(True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("127.0.0.1", 11434)),
        ("0.0.0.0", ("0.0.0.0", 11434)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":9000", ("127.0.0.1", 9000)),
        ("[::]:9000", ("::", 9000)),
        ("http://example.com", ("example.com", 80)),
        ("https://example.com", ("example.com", 443)),
        ("http://10.0.0.1:1234", ("10.0.0.1", 1234)),
        ('"127.0.0.1:7777"', ("127.0.0.1", 7777)),
        ("host:notaport", ("host", 11434)),
    ],
)
def test_ollama_host_forms(value: str, expected: tuple[str, int]) -> None:
    assert parse_host(value) == expected


def test_settings_from_env(tmp_path: Path) -> None:
    env = {
        "OLLAMA_HOST": "0.0.0.0:1234",
        "OLLAMA_MODELS": str(tmp_path),
        "OLLAMA_KEEP_ALIVE": "-1",
        "OLLAMA_NUM_PARALLEL": "3",
        "OLLAMA_MAX_LOADED_MODELS": "2",
        "OLLAMA_MAX_QUEUE": "7",
        "OLLAMA_CONTEXT_LENGTH": "8192",
        "OLLAMA_NOPRUNE": "1",
        "OLLAMA_ORIGINS": "http://a.example, http://b.example",
        "A3S_POWER_API_KEYS": " k1, ,k2 ",
        "OLLAMA_FLASH_ATTENTION": "1",
        "OLLAMA_KV_CACHE_TYPE": "Q8_0",
    }
    s = Settings.from_env(env)
    assert (s.host, s.port, s.models_root) == ("0.0.0.0", 1234, tmp_path)
    assert s.keep_alive == math.inf
    assert (s.num_parallel, s.max_loaded_models, s.max_queue, s.context_length) == (3, 2, 7, 8192)
    assert s.noprune and s.origins == ("http://a.example", "http://b.example")
    assert s.api_keys == ("k1", "k2")
    assert s.flash_attention is True and s.kv_cache_type == "q8_0"
    plain = Settings.from_env({"HOME": str(tmp_path), "OLLAMA_KV_CACHE_TYPE": "q9"})
    assert plain.flash_attention is None and plain.kv_cache_type == "f16"
    assert Settings.from_env({"HOME": str(tmp_path), "OLLAMA_FLASH_ATTENTION": "0"}).flash_attention is False
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": "30", "HOME": str(tmp_path)}).keep_alive == 30
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": "bogus", "HOME": str(tmp_path)}).keep_alive == 300


def test_options_merge_precedence_and_runner_split() -> None:
    modelfile = {"temperature": 0.6, "stop": ["<|im_end|>"], "num_ctx": 8192}
    request = {"temperature": 0, "top_k": 10.9, "num_ctx": 100_000, "unknown_key": 1, "mirostat": 2}
    gen, runner = merge_options(modelfile, request, default_num_ctx=4096, trained_ctx=16384)
    assert gen.temperature == 0 and gen.top_k == 10 and gen.mirostat == 2
    assert gen.stop == ["<|im_end|>"]
    assert runner.num_ctx == 16384  # capped at the trained context
    _, default = merge_options(None, None, default_num_ctx=4096, trained_ctx=2048)
    assert default.num_ctx == 2048


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
        ({"top_k": "10"}, 'option "top_k" must be of type integer'),
        ({"seed": True}, 'option "seed" must be of type integer'),
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
        ({"stop": "x"}, 'option "stop" must be of type array'),
        ({"stop": ["a", 1]}, 'option "stop" must be of an array of strings'),
    ],
)
def test_option_type_errors(options: dict[str, object], error: str) -> None:
    with pytest.raises(OptionTypeError) as err:
        merge_options(options)
    assert str(err.value) == error and err.value.status == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("false", False), ("False", False), ("F", False), ("1", True),
     ("true", True), ("'1'", True), ("no", True), ("fAlSe", True)],
)  # fmt: skip
def test_boolean_variables_follow_go_parse_bool(tmp_path: Path, value: str, expected: bool) -> None:
    """Ollama: strconv.ParseBool, and an unparsable non-empty value counts as true."""
    env = {"HOME": str(tmp_path), "OLLAMA_NOPRUNE": value, "OLLAMA_DEBUG": value}
    settings = Settings.from_env(env)
    assert (settings.noprune, settings.debug) == (expected, expected)
