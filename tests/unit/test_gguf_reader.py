from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from _store_helpers import smollm2_path, write_tiny_gguf
from a3s_power.store.errors import InvalidGGUF
from a3s_power.store.gguf import format_parameter_count, read_gguf


def test_real_smollm2_header() -> None:
    info = read_gguf(smollm2_path())
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.parameter_count == 134_515_008
    assert format_parameter_count(info.parameter_count) == "134.52M"
    assert info.file_type == "Q4_1"
    assert info.context_length == 8192
    assert info.embedding_length == 576
    assert "<|im_start|>" in info.chat_template
    assert info.tokenizer["model"] == "gpt2"
    assert info.tokenizer["vocab_size"] == 49152
    assert info.tokenizer["eos_token_id"] == 2
    assert len(info.tensors) == 272
    first = info.tensors[0]
    assert (first.name, first.type_name, first.shape) == ("token_embd.weight", "Q8_0", (576, 49152))
    model_info = info.model_info()
    assert "general.name" not in model_info and "tokenizer.chat_template" not in model_info
    assert model_info["tokenizer.ggml.tokens"] == []  # long arrays elided unless verbose
    assert len(info.model_info(verbose=True)["tokenizer.ggml.tokens"]) == 49152


def test_tiny_written_gguf(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "t.gguf", arch="qwen2", extra={"qwen2.pooling_type": 1})
    info = read_gguf(path)
    assert info.architecture == "qwen2"
    assert info.file_type == "F16"
    assert info.parameter_count == 128
    assert info.context_length == 256
    assert info.metadata["qwen2.pooling_type"] == 1
    assert [t.name for t in info.tensors] == ["blk.0.weight", "blk.1.weight"]
    assert all(t.type_name == "F16" and t.shape == (8, 8) for t in info.tensors)


def test_file_type_inferred_from_tensors_when_missing(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "t.gguf", file_type=None, dtype=np.float32)
    assert read_gguf(path).file_type == "F32"


@pytest.mark.parametrize("keep", [3, 10, 40, 200, 500])
def test_truncated_header_is_a_clear_error(tmp_path: Path, keep: int) -> None:
    full = write_tiny_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full[:keep])
    with pytest.raises(InvalidGGUF, match="truncated GGUF file|not a GGUF file"):
        read_gguf(cut)


def test_truncated_tensor_data_detected(tmp_path: Path) -> None:
    full = write_tiny_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full[:-10])
    with pytest.raises(InvalidGGUF, match="tensor data needs"):
        read_gguf(cut)
    assert read_gguf(cut, check_data=False).architecture == "llama"


def test_not_gguf_and_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(InvalidGGUF, match="bad magic"):
        read_gguf(bad)
    version = tmp_path / "v9.gguf"
    version.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
    with pytest.raises(InvalidGGUF, match="unsupported GGUF version 9"):
        read_gguf(version)
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40) + b"key")
    with pytest.raises(InvalidGGUF, match="corrupt GGUF file"):
        read_gguf(huge)
    with pytest.raises(InvalidGGUF, match="cannot read"):
        read_gguf(tmp_path / "missing.gguf")


@pytest.mark.parametrize(
    ("count", "text"),
    [(8_030_261_248, "8.0B"), (8_000_000_000, "8B"), (134_515_008, "134.52M"), (270_000_000, "270M"),
     (3_212_749_888, "3.2B"), (12_345, "12K"), (999, "999")],
)  # fmt: skip
def test_parameter_size_like_ollama(count: int, text: str) -> None:
    assert format_parameter_count(count) == text
