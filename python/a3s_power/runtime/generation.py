"""Generation streams: native Channel → asyncio without polling (eventfd + add_reader).

The decode loop runs on the engine's C++ thread; Python only submits a request and drains
finished text pieces when the channel's eventfd becomes readable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field, fields
from typing import Any

from a3s_power import _native
from a3s_power.errors import Busy, InvalidRequest, PowerError
from a3s_power.runtime.loaded import LoadedModel


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """The load-time part of the options (Ollama's `Options.Runner`): fixed when a model is
    loaded; a request asking for other values reloads it. Field names match `LoadSpec`'s."""

    num_ctx: int = 4096
    num_batch: int = 2048
    num_gpu: int = -1
    num_thread: int = 0
    use_mmap: bool = True
    tensor_split: str = ""  # "local,worker1,...": layer shares with `serve --rpc` ("" = by free memory)


def _native_field(name: str, *, convert: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Field metadata: where the value goes in `_native.GenerateRequest` ("sampling.x" for the
    sampler's parameters) and how it is converted on the way."""
    return {"native": name, "convert": convert}


def _logit_bias(value: dict[int, float]) -> list[tuple[int, float]]:
    return [(int(k), float(v)) for k, v in value.items()]


@dataclass
class GenerationOptions:
    """Ollama's options (names as in Ollama's `options`) with their defaults, in one place: the
    sampling part, the request flags the services set, and the runner part (`runner`).

    `to_request` carries every field to the engine by the metadata below (a field without
    metadata goes to the sampler under its own name), so there is no second list to keep."""

    num_predict: int = field(default=-1, metadata=_native_field("n_predict"))
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalize_newline: bool = True
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = -1
    num_keep: int = field(default=4, metadata=_native_field("n_keep"))
    stop: list[str] = field(default_factory=list, metadata=_native_field("stop", convert=list))
    ignore_eos: bool = False
    logit_bias: dict[int, float] = field(default_factory=dict, metadata=_native_field(
        "sampling.logit_bias", convert=_logit_bias))  # fmt: skip
    grammar: str = ""
    grammar_lazy: bool = False  # the grammar applies from the first trigger on (tool calls)
    grammar_triggers: list[str] = field(default_factory=list, metadata=_native_field(
        "sampling.trigger_words", convert=list))  # fmt: skip
    grammar_trigger_patterns: list[str] = field(default_factory=list, metadata=_native_field(
        "sampling.trigger_patterns", convert=list))  # fmt: skip
    preserved_tokens: list[str] = field(default_factory=list, metadata=_native_field(
        "sampling.preserved_tokens", convert=list))  # fmt: skip
    generation_prompt: str = ""  # what the template put after the conversation (grammar prefill)
    grammar_from_template: bool = False  # a tool-call grammar: it starts at the generation prompt
    logprobs: bool = field(default=False, metadata=_native_field("logprobs"))
    top_logprobs: int = field(default=0, metadata=_native_field("top_logprobs"))
    truncate: bool = field(default=True, metadata=_native_field("truncate"))
    shift: bool = field(default=True, metadata=_native_field("shift"))
    cache_prompt: bool = field(default=True, metadata=_native_field("cache_prompt"))
    lora_scales: list[float] = field(
        default_factory=list, metadata=_native_field("lora_scales", convert=list)
    )
    # speculative n-gram drafting: tokens proposed per step (-1: the server's A3S_POWER_SPECULATIVE, 0: off)
    draft_max: int = field(default=-1, metadata=_native_field("draft_max"))
    runner: RunnerOptions = field(default_factory=RunnerOptions, metadata=_native_field(""))

    def to_request(
        self, prompt: list[int], media: _native.MediaPrompt | None = None
    ) -> _native.GenerateRequest:
        req = _native.GenerateRequest()
        req.prompt = prompt
        if media is not None:
            req.media = media
        sampling = req.sampling
        for f in fields(self):
            target = f.metadata.get("native", "sampling." + f.name)
            if not target:  # the runner part went to the engine when the model was loaded
                continue
            value = getattr(self, f.name)
            convert = f.metadata.get("convert")
            value = convert(value) if convert is not None else value
            owner, _, name = target.rpartition(".")
            setattr(sampling if owner == "sampling" else req, name, value)
        req.logprobs = self.logprobs or self.top_logprobs > 0
        req.sampling = sampling
        return req


@dataclass
class TokenLogprob:
    token: int
    text: bytes
    logprob: float
    top: list[tuple[int, bytes, float]]


@dataclass
class Chunk:
    text: str
    tokens: list[int]
    logprobs: list[TokenLogprob] | None = None


@dataclass
class Completion:
    done_reason: str
    prompt_eval_count: int
    eval_count: int
    prompt_eval_duration: int
    eval_duration: int
    cached_tokens: int
    truncated: int
    context: list[int]
    raw: dict[str, Any]
    media_tokens: int = 0  # prompt positions the images take (evaluated or reused)
    media_encode_duration: int = 0  # ns encoding images (inside prompt_eval_duration)
    media_chunks: int = 0  # images encoded (0 when the cache had them)

    @property
    def prompt_tokens(self) -> int:
        """Every prompt token, evaluated or reused from the KV cache (what Ollama's prompt_eval_count
        and the OpenAI / Anthropic usage fields report)."""
        return self.prompt_eval_count + self.cached_tokens

    @classmethod
    def from_native(cls, d: dict[str, Any]) -> Completion:
        return cls(
            done_reason=d["done_reason"],
            prompt_eval_count=d["prompt_eval_count"],
            eval_count=d["eval_count"],
            prompt_eval_duration=d["prompt_eval_duration"],
            eval_duration=d["eval_duration"],
            cached_tokens=d["cached_tokens"],
            truncated=d["truncated"],
            context=d["context"],
            raw=d,
            media_tokens=d.get("media_tokens", 0),
            media_encode_duration=d.get("media_encode_duration", 0),
            media_chunks=d.get("media_chunks", 0),
        )


def _submit(
    loaded: LoadedModel,
    prompt: list[int],
    options: GenerationOptions,
    media: _native.MediaPrompt | None = None,
) -> _native.Channel:
    try:
        return loaded.engine.submit(options.to_request(prompt, media))
    except _native.BusyError as exc:
        raise Busy(str(exc)) from exc
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    except RuntimeError as exc:  # EngineError: the model is unloading
        raise PowerError(str(exc)) from exc


def _drain(channel: _native.Channel) -> tuple[list[Chunk], Completion | None]:
    """Everything the engine has decided so far; the Completion once the request is over."""
    try:
        events, final = channel.drain()
    except RuntimeError as exc:  # the request ended with an engine error
        raise PowerError(str(exc)) from exc
    chunks = [
        Chunk(
            text=text,
            tokens=list(tokens),
            logprobs=[TokenLogprob(t, b, lp, list(top)) for (t, b, lp, top) in lps] if lps else None,
        )
        for text, tokens, lps in events
    ]
    return chunks, Completion.from_native(final) if final is not None else None


async def generate(
    loaded: LoadedModel,
    prompt: list[int],
    options: GenerationOptions,
    media: _native.MediaPrompt | None = None,
) -> AsyncIterator[Chunk | Completion]:
    """Yields Chunks as text is decided, then one Completion. Closing the iterator cancels.
    `media`: a prompt with images (Projector.tokenize), which then replaces `prompt`."""
    channel = _submit(loaded, prompt, options, media)
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    fd = channel.fileno()
    loop.add_reader(fd, ready.set)
    final: Completion | None = None
    try:
        while final is None:
            await ready.wait()
            ready.clear()
            chunks, final = _drain(channel)
            for chunk in chunks:
                yield chunk
        yield final
    finally:
        loop.remove_reader(fd)
        channel.cancel()  # no-op once the request has finished


def generate_sync(
    loaded: LoadedModel,
    prompt: list[int],
    options: GenerationOptions,
    media: _native.MediaPrompt | None = None,
) -> Generator[Chunk | Completion, None, None]:
    """Blocking twin of `generate` for the CLI (waits with the GIL released)."""
    channel = _submit(loaded, prompt, options, media)
    final: Completion | None = None
    try:
        while final is None:
            channel.wait(1000)
            chunks, final = _drain(channel)
            yield from chunks
        yield final
    finally:
        channel.cancel()  # no-op once the request has finished
