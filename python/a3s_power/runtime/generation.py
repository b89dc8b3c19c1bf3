"""Generation streams: native Channel → asyncio without polling (eventfd + add_reader).

The decode loop runs on the engine's C++ thread; Python only submits a request and drains
finished text pieces when the channel's eventfd becomes readable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from typing import Any

from a3s_power import _native
from a3s_power.errors import Busy, InvalidRequest, PowerError
from a3s_power.runtime.loaded import LoadedModel


@dataclass
class GenerationOptions:
    """Ollama's runtime options (names as in Ollama's `options`)."""

    num_predict: int = -1
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
    num_keep: int = 4
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    logit_bias: dict[int, float] = field(default_factory=dict)
    grammar: str = ""
    grammar_lazy: bool = False  # the grammar applies from the first trigger on (tool calls)
    grammar_triggers: list[str] = field(default_factory=list)
    grammar_trigger_patterns: list[str] = field(default_factory=list)
    preserved_tokens: list[str] = field(default_factory=list)
    generation_prompt: str = ""  # what the template put after the conversation (grammar prefill)
    grammar_from_template: bool = False  # a tool-call grammar: it starts at the generation prompt
    logprobs: bool = False
    top_logprobs: int = 0
    truncate: bool = True
    shift: bool = True
    cache_prompt: bool = True
    lora_scales: list[float] = field(default_factory=list)

    def to_request(self, prompt: list[int]) -> _native.GenerateRequest:
        req = _native.GenerateRequest()
        req.prompt = prompt
        req.n_predict = self.num_predict
        req.n_keep = self.num_keep
        req.truncate = self.truncate
        req.shift = self.shift
        req.cache_prompt = self.cache_prompt
        req.stop = list(self.stop)
        req.logprobs = self.logprobs or self.top_logprobs > 0
        req.top_logprobs = self.top_logprobs
        req.lora_scales = list(self.lora_scales)
        s = req.sampling
        s.temperature = self.temperature
        s.top_k = self.top_k
        s.top_p = self.top_p
        s.min_p = self.min_p
        s.typical_p = self.typical_p
        s.repeat_penalty = self.repeat_penalty
        s.repeat_last_n = self.repeat_last_n
        s.presence_penalty = self.presence_penalty
        s.frequency_penalty = self.frequency_penalty
        s.penalize_newline = self.penalize_newline
        s.mirostat = self.mirostat
        s.mirostat_tau = self.mirostat_tau
        s.mirostat_eta = self.mirostat_eta
        s.seed = self.seed
        s.ignore_eos = self.ignore_eos
        s.logit_bias = [(int(k), float(v)) for k, v in self.logit_bias.items()]
        s.grammar = self.grammar
        s.grammar_lazy = self.grammar_lazy
        s.trigger_words = list(self.grammar_triggers)
        s.trigger_patterns = list(self.grammar_trigger_patterns)
        s.preserved_tokens = list(self.preserved_tokens)
        s.generation_prompt = self.generation_prompt
        s.grammar_from_template = self.grammar_from_template
        req.sampling = s
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
        )


def _submit(loaded: LoadedModel, prompt: list[int], options: GenerationOptions) -> _native.Channel:
    try:
        return loaded.engine.submit(options.to_request(prompt))
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
    loaded: LoadedModel, prompt: list[int], options: GenerationOptions
) -> AsyncIterator[Chunk | Completion]:
    """Yields Chunks as text is decided, then one Completion. Closing the iterator cancels."""
    channel = _submit(loaded, prompt, options)
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
    loaded: LoadedModel, prompt: list[int], options: GenerationOptions
) -> Generator[Chunk | Completion, None, None]:
    """Blocking twin of `generate` for the CLI (waits with the GIL released)."""
    channel = _submit(loaded, prompt, options)
    final: Completion | None = None
    try:
        while final is None:
            channel.wait(1000)
            chunks, final = _drain(channel)
            yield from chunks
        yield final
    finally:
        channel.cancel()  # no-op once the request has finished
