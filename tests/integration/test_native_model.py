"""Loading, metadata, tokenization and chat templates on real models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gguf
import jinja2
import jinja2.sandbox
import pytest

from a3s_power import _native
from a3s_power.errors import ModelLoadError
from a3s_power.runtime import load_model


def gguf_field(path: Path, key: str) -> object:
    reader = gguf.GGUFReader(str(path))
    return reader.fields[key].contents()


def test_metadata_matches_the_gguf_header(smollm2, smollm2_path):
    info = smollm2.info
    assert info.architecture == "llama" == gguf_field(smollm2_path, "general.architecture")
    assert info.context_length == gguf_field(smollm2_path, "llama.context_length")
    assert info.embedding_length == gguf_field(smollm2_path, "llama.embedding_length") == 576
    assert info.file_type == "Q4_1"
    assert 130_000_000 < info.parameter_count < 140_000_000
    assert info.bos_token == gguf_field(smollm2_path, "tokenizer.ggml.bos_token_id")
    assert info.eos_token == gguf_field(smollm2_path, "tokenizer.ggml.eos_token_id")
    assert info.eos_token in info.eog_tokens
    assert info.chat_template == gguf_field(smollm2_path, "tokenizer.chat_template")


def test_gemma3_metadata(gemma3, gemma3_path):
    info = gemma3.info
    assert info.architecture == "gemma3"
    assert info.context_length == gguf_field(gemma3_path, "gemma3.context_length")
    assert info.file_type.startswith("Q4_K")
    assert 200_000_000 < info.parameter_count < 300_000_000
    assert info.bos_token == 2


@pytest.mark.parametrize(
    "text", ["hello world", "héllo wörld ñ", "日本語のテキスト", "emoji 🌍🚀👩‍👩‍👧", "mixed\n\ttabs  spaces"]
)
def test_tokenize_round_trip(smollm2, gemma3, text):
    for loaded in (smollm2, gemma3):
        tokens = loaded.tokenize(text, add_special=False)
        assert tokens and all(isinstance(t, int) for t in tokens)
        assert loaded.detokenize(tokens) == text
        pieces = b"".join(loaded.model.token_to_piece(t) for t in tokens)
        assert pieces.decode("utf-8") == text


def test_tokenize_adds_bos_when_the_model_wants_it(gemma3):
    assert gemma3.tokenize("hi", add_special=True)[0] == gemma3.info.bos_token
    assert gemma3.tokenize("hi", add_special=False)[0] != gemma3.info.bos_token


def test_out_of_range_token_is_rejected(smollm2):
    with pytest.raises(ValueError, match="out of range"):
        smollm2.detokenize([smollm2.info.n_vocab + 5])


def _hf_render(template: str, messages: list[dict[str, str]], **extra: object) -> str:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **extra)


CONVERSATION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
]


def test_chat_template_three_messages_smollm2(smollm2):
    rendered = smollm2.render_chat(CONVERSATION)
    assert rendered.prompt == _hf_render(smollm2.info.chat_template, CONVERSATION)
    assert rendered.prompt.endswith("<|im_start|>assistant\n")


def test_chat_template_three_messages_gemma3(gemma3):
    # this GGUF carries no template: the Gemma format is chosen by architecture (not ChatML)
    assert gemma3.info.chat_template == ""
    rendered = gemma3.render_chat(CONVERSATION)
    # llama.cpp strips the template's leading BOS text because tokenization adds BOS itself
    assert rendered.prompt == (
        "<start_of_turn>user\nYou are a terse assistant.\n\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\nBlue.<end_of_turn>\n<start_of_turn>model\n"
    )
    tokens = gemma3.tokenize(rendered.prompt, True, True)
    assert tokens[0] == gemma3.info.bos_token and tokens[1] != gemma3.info.bos_token


def test_invalid_messages_raise_value_error(smollm2):
    with pytest.raises(ValueError):
        smollm2.model.render_chat("not json")


def test_missing_file_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nope.gguf")


def test_non_gguf_file_raises(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a model at all" * 100)
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        load_model(bad)


@pytest.mark.parametrize("keep_fraction", [0.0001, 0.01, 0.5, 0.999])
def test_truncated_gguf_raises(tmp_path, smollm2_path, keep_fraction):
    data = smollm2_path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: max(8, int(len(data) * keep_fraction))])
    with pytest.raises(ModelLoadError, match="truncated|corrupt"):
        load_model(cut)


def test_directory_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="not a regular file"):
        load_model(tmp_path)


def test_bad_inputs_never_kill_the_process(tmp_path, smollm2_path):
    """Run the bad loads in a child interpreter: it must exit normally, not abort."""
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 4000)
    half = tmp_path / "half.gguf"
    with open(smollm2_path, "rb") as src:
        half.write_bytes(src.read(20_000_000))
    code = (
        "import sys\nfrom a3s_power.runtime import load_model\nfrom a3s_power.errors import ModelLoadError\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n        load_model(p)\n    except ModelLoadError as e:\n        print('ok', e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(bad), str(half), str(tmp_path / "missing.gguf")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("ok ") == 3


def test_validate_gguf_accepts_the_real_model(smollm2_path):
    _native.validate_gguf(str(smollm2_path))


def test_copy_of_model_loads(tmp_path, smollm2_path):
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(smollm2_path, copy)
    loaded = load_model(copy, num_ctx=256)
    try:
        assert loaded.info.architecture == "llama"
    finally:
        loaded.close()


def test_llama_cpp_log_reaches_python_logging(smollm2_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG, logger="a3s_power.llama")
    loaded = load_model(smollm2_path, num_ctx=256)
    loaded.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "a3s_power.llama"]
    assert any("llama_model_loader" in m or "print_info" in m for m in messages), messages[:5]


def test_load_duration_is_reported(smollm2):
    assert 0 < smollm2.load_duration < 60 * 10**9
