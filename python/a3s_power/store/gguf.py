"""Header-only GGUF reader: metadata key/values and the tensor table; the weights are never read.

The file is memory-mapped and only the header pages are touched. Every read is bounds-checked, so a
truncated or corrupt file raises InvalidGGUF with the offset and what was being read.
"""

from __future__ import annotations

import functools
import math
import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a3s_power.store.errors import InvalidGGUF

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
_MAX_STRING = 1 << 28
_MAX_COUNT = 1 << 32
_MAX_DIMS = 8

# ggml_type → (name, block size, bytes per block)
TENSOR_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}  # fmt: skip

# llama_ftype (general.file_type) → Ollama's quantization_level text
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}  # fmt: skip

_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
    7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}  # fmt: skip
_STRING = 8
_ARRAY = 9


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int

    @property
    def type_name(self) -> str:
        entry = TENSOR_TYPES.get(self.type_id)
        return entry[0] if entry else f"type{self.type_id}"

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def n_bytes(self) -> int | None:
        entry = TENSOR_TYPES.get(self.type_id)
        if entry is None:
            return None
        _, block, size = entry
        return self.n_elements // block * size


@dataclass(slots=True)
class GGUFInfo:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    file_size: int = 0

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_value(self, key: str) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}")

    @property
    def parameter_count(self) -> int:
        value = self.metadata.get("general.parameter_count")
        if isinstance(value, int) and value > 0:
            return value
        return sum(t.n_elements for t in self.tensors)

    @property
    def file_type(self) -> str:
        """Ollama's quantization level, e.g. `Q4_K_M`; inferred from tensor types when the key is absent."""
        value = self.metadata.get("general.file_type")
        if isinstance(value, int) and value in FILE_TYPES:
            return FILE_TYPES[value]
        counts: dict[str, int] = {}
        for tensor in self.tensors:
            if tensor.name.endswith(".weight") and len(tensor.shape) >= 2:
                counts[tensor.type_name] = counts.get(tensor.type_name, 0) + tensor.n_elements
        return max(counts, key=lambda k: counts[k]) if counts else "unknown"

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return int(value) if isinstance(value, int) else None

    @property
    def embedding_length(self) -> int | None:
        value = self.arch_value("embedding_length")
        return int(value) if isinstance(value, int) else None

    @property
    def chat_template(self) -> str:
        value = self.metadata.get("tokenizer.chat_template", "")
        return value if isinstance(value, str) else ""

    @property
    def tokenizer(self) -> dict[str, Any]:
        """Compact tokenizer facts: model, vocabulary size, special token ids."""
        facts: dict[str, Any] = {}
        for key, value in self.metadata.items():
            if not key.startswith("tokenizer.ggml."):
                continue
            short = key[len("tokenizer.ggml.") :]
            if isinstance(value, list):
                if short == "tokens":
                    facts["vocab_size"] = len(value)
                continue
            facts[short] = value
        return facts

    def model_info(self, *, verbose: bool = False) -> dict[str, Any]:
        """Ollama's `model_info`: every KV but general.name and the chat template; long arrays emptied."""
        out: dict[str, Any] = {}
        for key, value in self.metadata.items():
            if key in ("general.name", "tokenizer.chat_template"):
                continue
            if isinstance(value, list) and len(value) > 5 and not verbose:
                value = []
            out[key] = value
        out.setdefault("general.parameter_count", self.parameter_count)
        return out


class _Cursor:
    def __init__(self, buf: Mapping[int, int] | mmap.mmap | bytes, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise InvalidGGUF(
                f"truncated GGUF file: {what} at offset {self.pos} needs {n} bytes, file has {self.size}"
            )

    def scalar(self, fmt: str, width: int, what: str) -> Any:
        self.need(width, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)  # type: ignore[arg-type]
        self.pos += width
        return value

    def u32(self, what: str) -> int:
        return int(self.scalar("<I", 4, what))

    def u64(self, what: str) -> int:
        return int(self.scalar("<Q", 8, what))

    def string(self, what: str) -> str:
        length = self.u64(what + " length")
        if length > _MAX_STRING:
            raise InvalidGGUF(f"corrupt GGUF file: {what} length {length} at offset {self.pos - 8}")
        self.need(length, what)
        raw = bytes(self.buf[self.pos : self.pos + length])  # type: ignore[index]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, type_id: int, what: str) -> Any:
        if type_id in _SCALARS:
            fmt, width = _SCALARS[type_id]
            return self.scalar(fmt, width, what)
        if type_id == _STRING:
            return self.string(what)
        if type_id == _ARRAY:
            elem_type = self.u32(what + " element type")
            count = self.u64(what + " element count")
            if count > _MAX_COUNT:
                raise InvalidGGUF(f"corrupt GGUF file: {what} has {count} elements")
            if elem_type in _SCALARS:
                fmt, width = _SCALARS[elem_type]
                self.need(width * count, what)
                values = list(struct.unpack_from(f"<{count}{fmt[1]}", self.buf, self.pos))  # type: ignore[arg-type]
                self.pos += width * count
                return values
            return [self.value(elem_type, what) for _ in range(count)]
        raise InvalidGGUF(f"corrupt GGUF file: unknown value type {type_id} for {what}")


def read_gguf(path: str | Path, *, check_data: bool = True) -> GGUFInfo:
    """Read the header of a GGUF file. `check_data` also checks the file is long enough for all tensors."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < 4:
                raise InvalidGGUF(f"not a GGUF file: {path} is {size} bytes")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return _parse(path, mapped, size, check_data)
    except OSError as exc:
        raise InvalidGGUF(f"cannot read GGUF file {path}: {exc.strerror or exc}") from exc


def _parse(path: Path, buf: mmap.mmap, size: int, check_data: bool) -> GGUFInfo:
    cur = _Cursor(buf, size)
    cur.need(4, "magic")
    if bytes(buf[0:4]) != GGUF_MAGIC:
        raise InvalidGGUF(f"not a GGUF file: bad magic {bytes(buf[0:4])!r} in {path}")
    cur.pos = 4
    version = cur.u32("version")
    if version not in (1, 2, 3):
        if version & 0xFFFF == 0 and version:
            raise InvalidGGUF("big-endian GGUF files are not supported")
        raise InvalidGGUF(f"unsupported GGUF version {version}")
    if version == 1:
        n_tensors, n_kv = cur.u32("tensor count"), cur.u32("metadata count")
    else:
        n_tensors, n_kv = cur.u64("tensor count"), cur.u64("metadata count")
    if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
        raise InvalidGGUF(f"corrupt GGUF file: {n_tensors} tensors, {n_kv} metadata entries")
    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key = cur.string(f"metadata key #{i}")
        type_id = cur.u32(f"type of {key!r}")
        metadata[key] = cur.value(type_id, f"value of {key!r}")
    tensors: list[TensorInfo] = []
    for i in range(n_tensors):
        name = cur.string(f"tensor name #{i}")
        n_dims = cur.u32(f"dimensions of {name!r}")
        if n_dims > _MAX_DIMS:
            raise InvalidGGUF(f"corrupt GGUF file: tensor {name!r} has {n_dims} dimensions")
        shape = tuple(cur.u64(f"shape of {name!r}") for _ in range(n_dims))
        type_id = cur.u32(f"type of tensor {name!r}")
        offset = cur.u64(f"offset of tensor {name!r}")
        tensors.append(TensorInfo(name, shape, type_id, offset))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        alignment = DEFAULT_ALIGNMENT
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    info = GGUFInfo(path, version, metadata, tensors, data_offset, size)
    if check_data and tensors:
        ends = [t.offset + (t.n_bytes or 0) for t in tensors]
        needed = data_offset + max(ends)
        if needed > size:
            raise InvalidGGUF(
                f"truncated GGUF file: tensor data needs {needed} bytes, {path.name} has {size}"
            )
    return info


def format_parameter_count(count: int) -> str:
    """Ollama's format.HumanNumber: `8B`, `3.2B`, `134.52M`, `270M`, `12K`."""
    if count >= 1_000_000_000:
        number = count / 1_000_000_000
        return f"{number:.0f}B" if number == math.floor(number) else f"{number:.1f}B"
    if count >= 1_000_000:
        number = count / 1_000_000
        return f"{number:.0f}M" if number == math.floor(number) else f"{number:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}K"
    return str(count)


def read_gguf_header(path: str | Path) -> GGUFInfo:
    """`read_gguf(path, check_data=False)`, parsed once per file version: a header holds the whole
    vocabulary (tens of ms to parse), and every request that names a model needs its facts.
    Keyed by path, size and mtime, so a replaced file is read again."""
    stat = os.stat(path)
    return _cached_header(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached_header(path: str, size: int, mtime_ns: int) -> GGUFInfo:
    return read_gguf(path, check_data=False)
