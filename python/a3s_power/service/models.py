"""From a request's model name to a held runner: the store lookup, capability checks, the load
spec (options merged: defaults < Modelfile PARAMETERs < request), and the scheduler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from a3s_power.durations import keep_alive_seconds
from a3s_power.errors import InvalidRequest, NotFound
from a3s_power.runtime.options import MIN_NUM_CTX, VISION_MIN_NUM_CTX, Options, options_from_layers
from a3s_power.runtime.scheduler import LoadSpec, Runner, RunnerInfo
from a3s_power.service.state import ServerState
from a3s_power.store.blobs import sha256_bytes
from a3s_power.store.errors import InvalidModelName, ModelNotFound
from a3s_power.store.gguf import GGUFInfo
from a3s_power.store.model_config import details_from_config
from a3s_power.store.show import ModelView, capabilities
from a3s_power.store.store import ModelEntry, ModelStore

THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass
class ResolvedModel:
    """A stored model, ready to be scheduled."""

    requested: str
    key: str  # full name: the scheduler's key
    view: ModelView
    info: GGUFInfo | None
    capabilities: list[str] = field(default_factory=list)

    @property
    def display(self) -> str:
        return self.view.name.display_shortest()

    @property
    def thinks(self) -> bool:
        return "thinking" in self.capabilities


async def list_entries(store: ModelStore) -> list[ModelEntry]:
    """The store's models, newest first (`/api/tags`, `/v1/models`): what it read before when no
    manifest changed, checked on the loop for a small store (a walk and a stat each: well under a
    millisecond, less than a hop to a worker thread); else read on a worker thread."""
    entries = store.cached_listing()
    if entries is None:
        entries = await asyncio.to_thread(store.list_models)
    return entries


def resolve(state: ServerState, model: str) -> ResolvedModel:
    if not model:
        raise InvalidRequest("model is required")
    try:
        view = ModelView(state.store, model)
    except (ModelNotFound, InvalidModelName):
        raise NotFound(f"model '{model}' not found") from None
    if view.model_path is None:
        raise NotFound(f"model '{model}' not found")
    info = view.gguf()
    return ResolvedModel(model, str(view.name), view, info, capabilities(view, info))


def require(model: ResolvedModel, capability: str, what: str) -> None:
    if capability not in model.capabilities:
        raise InvalidRequest(f'"{model.requested}" does not support {what}')


def check_think(model: ResolvedModel, think: bool | str | None) -> None:
    if isinstance(think, str) and think not in THINK_LEVELS:
        raise InvalidRequest(
            f'invalid think value: "{think}" (must be "high", "medium", "low", "max", true, or false)'
        )
    if think not in (None, False) and not model.thinks:
        raise InvalidRequest(f'"{model.requested}" does not support thinking')


def check_logprobs(top_logprobs: int) -> None:
    if not 0 <= top_logprobs <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20")


def keep_alive_of(value: float | str | None) -> float | None:
    return None if value is None else keep_alive_seconds(value)


def load_plan(
    state: ServerState,
    model: ResolvedModel,
    options: Mapping[str, Any] | None,
    *,
    embedding: bool = False,
) -> tuple[Options, LoadSpec]:
    """The merged options and the load spec they imply (the runner part plus the server's own)."""
    settings = state.settings
    trained = (model.info.context_length or 0) if model.info is not None else 0
    projector = _projector_path(model) if not embedding else None
    merged = options_from_layers(
        model.view.parameters,
        options,
        default_num_ctx=settings.context_length,
        trained_ctx=trained,
        min_num_ctx=VISION_MIN_NUM_CTX if projector else MIN_NUM_CTX,
    )
    runner = asdict(merged.runner)
    runner["num_thread"] = runner["num_thread"] or settings.num_thread
    spec = LoadSpec(
        path=str(model.view.model_path),
        num_parallel=settings.num_parallel,
        embedding=embedding,
        lora_paths=tuple(str(p) for p in model.view.adapter_paths),
        flash_attention=settings.flash_attention,
        kv_cache_type=settings.kv_cache_type,
        rpc_servers=settings.rpc_servers,
        projector_path=projector,
        cache_ram_mib=settings.cache_ram_mib,
        draft_max=settings.draft_max,
        draft_path=None if embedding else _draft_path(state, model),
        **runner,
    )
    return merged, spec


def _draft_path(state: ServerState, model: ResolvedModel) -> str | None:
    """The speculative draft model: `PARAMETER draft_model <name>` (a model in the store), else an
    Ollama draft layer. A name the store does not have is a 400 naming it."""
    name = model.view.parameters.get("draft_model")
    if isinstance(name, str) and name:
        try:
            view = ModelView(state.store, name)
        except (ModelNotFound, InvalidModelName):
            view = None
        if view is None or view.model_path is None:
            raise InvalidRequest(
                f"draft model '{name}' not found (PARAMETER draft_model of '{model.requested}')"
            )
        return str(view.model_path)
    return str(model.view.draft_path) if model.view.draft_path is not None else None


def _projector_path(model: ResolvedModel) -> str | None:
    """The projector layer, else the model file itself when its GGUF carries the vision tower
    (Ollama's monolithic vision models: passed as both model and mmproj)."""
    if model.view.projector_paths:
        return str(model.view.projector_paths[0])
    if "vision" in model.capabilities:
        return str(model.view.model_path)
    return None


async def acquire_runner(state: ServerState, model: ResolvedModel, spec: LoadSpec) -> Runner:
    """Hold a runner loaded with `spec` (queued behind the loader when it must be loaded)."""
    return await state.scheduler.acquire(model.key, spec, describe=lambda: _describe(state, model))


def release_runner(state: ServerState, runner: Runner, keep_alive: float | None) -> None:
    state.scheduler.release(runner, keep_alive)


def _describe(state: ServerState, model: ResolvedModel) -> RunnerInfo:
    """`ps`'s digest (sha256 of the manifest file, as `list` shows it), size and details."""
    _, raw = state.store.read_manifest_bytes(model.view.name)
    size = sum(layer.size for layer in model.view.manifest.all_blobs())
    return RunnerInfo(sha256_bytes(raw).removeprefix("sha256:"), size, details_from_config(model.view.config))


async def load_or_unload(
    state: ServerState, model: ResolvedModel, spec: LoadSpec, keep_alive: float | None
) -> str:
    """An empty prompt: load the model (done_reason "load"), or with keep_alive 0 unload it."""
    if keep_alive == 0:
        await state.scheduler.unload(model.key)
        return "unload"
    runner = await acquire_runner(state, model, spec)
    release_runner(state, runner, keep_alive)
    return "load"


def since(started_ns: int) -> int:
    """ns since `started_ns` (perf_counter_ns), at least 1: Ollama never reports a 0 duration."""
    return max(1, time.perf_counter_ns() - started_ns)
