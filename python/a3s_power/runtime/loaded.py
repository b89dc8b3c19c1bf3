"""A model loaded into memory with its engine (context, slots, decode thread)."""

from __future__ import annotations

import enum
import gc
import json
import os
import time
from dataclasses import dataclass, field, fields
from typing import Any

from a3s_power import _native
from a3s_power.chat.fallback_templates import fallback_template
from a3s_power.errors import InvalidRequest, ModelLoadError
from a3s_power.runtime import logbridge, rpc


@dataclass
class LoadedModel:
    path: str
    model: _native.Model
    engine: _native.Engine
    options: dict[str, Any] = field(default_factory=dict)
    template_override: str = ""  # a Jinja chat template replacing the model's own
    projector: _native.Projector | None = None  # vision / audio (mtmd), loaded beside the model
    load_duration: int = 0  # ns spent loading weights and creating the engine (Ollama's load_duration)
    rpc_servers: tuple[str, ...] = ()  # the RPC workers holding part of the model
    rpc_dropped: tuple[str, ...] = ()  # workers asked for but left out (lost earlier, still down)

    @property
    def broken(self) -> str:
        """Why the engine stopped (an RPC worker's connection was lost), "" while healthy."""
        if not self.rpc_servers or not hasattr(self, "engine"):
            return ""
        return str(_native.engine_broken(self.engine))

    def devices(self) -> list[dict[str, Any]]:
        """Which devices hold how much of the model (weights, KV cache, compute buffers)."""
        if not hasattr(self, "engine"):
            return []
        return rpc.device_summary(_native.engine_memory(self.engine))

    @property
    def info(self) -> _native.ModelInfo:
        return self.model.info

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self.model.tokenize(text, add_special, parse_special)

    def detokenize(self, tokens: list[int], *, unparse_special: bool = False) -> str:
        return self.model.detokenize(tokens, False, unparse_special)

    def fim_tokens(self) -> tuple[int, int, int] | None:
        """The model's fill-in-the-middle tokens (prefix, suffix, middle), None without them:
        the GGUF's `tokenizer.ggml.fim_*_token_id`, else the special tokens the common FIM
        vocabularies name (StarCoder, Qwen, DeepSeek, CodeLlama)."""
        metadata = self.info.metadata
        ids = [metadata.get(f"tokenizer.ggml.fim_{part}_token_id", "") for part in ("pre", "suf", "mid")]
        if all(i.strip().isdigit() for i in ids):
            pre, suf, mid = (int(i) for i in ids)
            return pre, suf, mid
        for names in _FIM_NAMES:
            found = [self.model.tokenize(name, False, True) for name in names]
            if all(len(t) == 1 for t in found):
                return found[0][0], found[1][0], found[2][0]
        return None

    def render_chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> _native.ChatRender:
        kwargs.setdefault("template_override", self.template_override)
        return self.model.render_chat(json.dumps(messages), **kwargs)

    def embed(
        self, texts: list[str], *, normalize: bool = True, truncate: bool = True
    ) -> tuple[Any, list[int]]:
        """Pooled vectors ([n, dim] float32 array) and the token count of each input."""
        inputs = [self.model.tokenize(t, True, False) for t in texts]
        return self.engine.embed(inputs, normalize, truncate)

    def rerank(self, query: str, documents: list[str], *, truncate: bool = True) -> list[float]:
        """Relevance score of each document for `query` (needs a model with a rank head)."""
        return self.rerank_counted(query, documents, truncate=truncate)[0]

    def rerank_counted(
        self, query: str, documents: list[str], *, truncate: bool = True
    ) -> tuple[list[float], list[int]]:
        """`rerank`'s scores and the token count of each (query, document) input."""
        if self.stats().pooling != Pooling.RANK:
            raise InvalidRequest("this model does not support reranking (load it with pooling='rank')")
        inputs = [self.model.rerank_input(query, doc) for doc in documents]
        scores, counts = self.engine.embed(inputs, False, truncate)
        return [float(row[0]) for row in scores], list(counts)

    def stats(self) -> EngineStats:
        if not hasattr(self, "engine"):  # a split model's native objects are freed on close()
            return EngineStats.from_native({})
        return EngineStats.from_native(self.engine.stats())

    def close(self) -> None:
        if not hasattr(self, "engine"):
            return
        self.engine.shutdown("model unloaded")
        if self.rpc_servers:
            # free the native objects now: they hold this process's one connection to each worker
            # (a worker serves one client at a time, so a stale connection would block the next
            # load's probe); gc.collect() frees copies held by reference cycles (tracebacks)
            del self.engine
            del self.model
            gc.collect()
            rpc.POOL.release(self.rpc_servers)


_FIM_NAMES = (
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    ("▁<PRE>", "▁<SUF>", "▁<MID>"),
)
ChatRender = _native.ChatRender  # a rendered conversation: prompt, grammar, parser, stops


class Pooling(enum.IntEnum):
    """llama.cpp's pooling types (`llama_pooling_type`)."""

    UNSPECIFIED = -1
    NONE = 0
    MEAN = 1
    CLS = 2
    LAST = 3
    RANK = 4


@dataclass(frozen=True, slots=True)
class EngineStats:
    """What the engine reports about itself (slots, queue, context, decode counters)."""

    n_slots: int
    n_active: int
    n_queued: int
    n_ctx: int
    n_batch: int
    n_ubatch: int
    pooling: Pooling
    decode_calls: int
    tokens_decoded: int

    @classmethod
    def from_native(cls, raw: dict[str, Any]) -> EngineStats:
        names = [f.name for f in fields(cls) if f.name != "pooling"]
        return cls(pooling=Pooling(int(raw.get("pooling", -1))), **{n: int(raw.get(n, 0)) for n in names})


_POOLING = {p.name.lower(): int(p) for p in Pooling if p is not Pooling.UNSPECIFIED}


def load_model(
    path: str | os.PathLike[str],
    *,
    num_ctx: int = 4096,
    num_parallel: int = 1,
    num_batch: int = 2048,
    num_thread: int = 0,
    num_gpu: int = -1,
    use_mmap: bool = True,
    use_mlock: bool = False,
    embedding: bool = False,
    lora_paths: list[str] | None = None,
    max_queue: int = 512,
    pooling: str = "",
    batch_invariant: bool = False,
    flash_attention: bool | None = None,
    kv_cache_type: str = "f16",
    rpc_servers: tuple[str, ...] = (),
    tensor_split: str = "",
    projector_path: str | os.PathLike[str] | None = None,
    share_prefix: bool = True,
    cache_ram_mib: int = 8192,
    kv_unified: bool | None = None,
    draft_max: int = 0,
    draft_path: str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Load a GGUF file and start its engine. Raises ModelLoadError with a readable reason.

    `batch_invariant=True` gives every slot its own KV stream and turns off llama.cpp's repacked
    CPU weight layouts: ~20 % less multi-stream throughput, but a request's output no longer
    depends on what it is batched with (bit-identical to running it alone when its prompt is
    evaluated in the same chunks).

    `flash_attention` None lets llama.cpp decide (auto); `kv_cache_type` is f16, q8_0, q4_0, …
    (Ollama's OLLAMA_KV_CACHE_TYPE; quantized V caches need flash attention).

    `projector_path`: an mmproj GGUF (vision / audio), loaded into mtmd with the model's threads,
    GPU use and flash-attention setting.
    `share_prefix` lets a request start from the longest prefix any slot holds (the unified pool
    shares the cells); `cache_ram_mib` bounds the host-RAM prompt cache of evicted slot states
    (A3S_POWER_CACHE_RAM; 0 turns it off). `kv_unified` None: one pool unless `batch_invariant`
    (with `batch_invariant=True, kv_unified=True` slots share cells and kernels stay row-independent).
    `draft_max` is the n-gram speculative draft length of requests that do not set `draft_max`
    (A3S_POWER_SPECULATIVE; 0: off).
    `draft_path`: a GGUF with the same vocabulary (a smaller model of the family) loaded beside this
    one to draft tokens instead of n-gram lookup; a mismatched vocabulary is an InvalidRequest.
    """
    if kv_cache_type not in ("", "f16", "f32", "bf16") and flash_attention is False:
        raise ModelLoadError(f"a quantized KV cache ({kv_cache_type}) needs flash attention")
    started = time.perf_counter_ns()
    mp = _native.ModelParams()
    mp.cpu_repack = not batch_invariant
    mp.n_gpu_layers = num_gpu
    mp.use_mmap = use_mmap
    mp.use_mlock = use_mlock
    mp.lora_paths = list(lora_paths or [])
    dropped: tuple[str, ...] = ()
    shares = [float(x) for x in tensor_split.split(",") if x.strip()]
    if rpc_servers and shares and not any(shares[1:]):  # "1" / "1,0,0": keep this model local
        rpc_servers, shares = (), []
    if rpc_servers:
        asked = tuple(rpc_servers)
        rpc_servers, dropped = rpc.POOL.prepare(asked)
        if shares and dropped and len(shares) == len(asked) + 1:  # one share per worker: drop the lost ones'
            shares = [shares[0], *(s for e, s in zip(asked, shares[1:], strict=True) if e in rpc_servers)]
        mp.rpc_servers = list(rpc_servers)
        mp.tensor_split = shares
    try:
        model = _native.Model.load(os.fspath(path), mp)
    except _native.ModelError as exc:
        raise ModelLoadError(str(exc)) from exc
    finally:
        logbridge.drain()
    projector = None
    if projector_path is not None and not embedding:
        from a3s_power.runtime.media import MEDIA_MARKER

        pp = _native.ProjectorParams()
        pp.n_threads = num_thread
        pp.use_gpu = num_gpu != 0
        pp.flash_attn = -1 if flash_attention is None else int(flash_attention)
        pp.media_marker = MEDIA_MARKER
        try:
            projector = _native.Projector.load(os.fspath(projector_path), model, pp)
        except _native.ModelError as exc:
            raise ModelLoadError(str(exc)) from exc
        finally:
            logbridge.drain()
    ep = _native.EngineParams()
    ep.n_ctx = num_ctx
    ep.n_parallel = num_parallel
    ep.n_batch = num_batch
    ep.n_threads = num_thread
    ep.embeddings = embedding
    ep.max_queue = max_queue
    ep.kv_unified = (not batch_invariant) if kv_unified is None else kv_unified
    ep.flash_attn = -1 if flash_attention is None else int(flash_attention)
    ep.cache_type_k = ep.cache_type_v = kv_cache_type or "f16"
    ep.share_prefix = share_prefix
    ep.cache_ram_mib = max(0, cache_ram_mib)
    ep.draft_max = min(max(0, draft_max), 64)
    if pooling:
        if pooling not in _POOLING:
            raise InvalidRequest(f"unknown pooling {pooling!r}; expected one of {sorted(_POOLING)}")
        ep.pooling = _POOLING[pooling]
    draft = _load_draft(draft_path, mp) if draft_path is not None and not embedding else None
    try:
        engine = _native.Engine(model, ep, projector, draft)
    except ValueError as exc:
        if draft is not None and "draft model" in str(exc):
            raise InvalidRequest(str(exc)) from exc
        raise ModelLoadError(str(exc)) from exc
    except RuntimeError as exc:
        raise ModelLoadError(str(exc)) from exc
    finally:
        logbridge.drain()
    info = model.info
    if rpc_servers:
        rpc.POOL.acquire(tuple(rpc_servers))
    return LoadedModel(
        path=os.fspath(path),
        model=model,
        engine=engine,
        template_override=fallback_template(info.architecture, info.chat_template),
        projector=projector,
        load_duration=time.perf_counter_ns() - started,
        rpc_servers=tuple(rpc_servers),
        rpc_dropped=dropped,
    )


def _load_draft(path: str | os.PathLike[str], target: _native.ModelParams) -> _native.Model:
    """The speculative draft model, loaded with the target's device and mmap settings, no adapters."""
    mp = _native.ModelParams()
    mp.cpu_repack = target.cpu_repack
    mp.n_gpu_layers = target.n_gpu_layers
    mp.use_mmap = target.use_mmap
    try:
        return _native.Model.load(os.fspath(path), mp)
    except _native.ModelError as exc:
        raise ModelLoadError(f"draft model: {exc}") from exc
    finally:
        logbridge.drain()
