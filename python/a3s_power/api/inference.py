"""The family-neutral part of running a generation: render the prompt on the loaded model, run
it on the engine, split the reply (content / thinking / tool calls). Each API family (Ollama's
native API, OpenAI, Anthropic) shapes the resulting items into its own wire format.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from a3s_power import _native
from a3s_power.api.scheduling import ResolvedModel, acquire
from a3s_power.chat.gotemplate import is_go_template, render_go_template
from a3s_power.chat.reply import ReplyDelta, ReplyParser
from a3s_power.errors import InvalidRequest
from a3s_power.runtime.generation import Chunk, Completion, GenerationOptions, generate
from a3s_power.runtime.grammar import grammar_for_format
from a3s_power.runtime.loaded import LoadedModel
from a3s_power.runtime.scheduler import LoadSpec
from a3s_power.store.show import is_jinja


def merged_stops(gen: GenerationOptions, extra: Iterable[str] = ()) -> list[str]:
    seen: list[str] = []
    for stop in [*gen.stop, *extra]:
        if stop and stop not in seen:
            seen.append(stop)
    return seen


@dataclass
class Prompt:
    tokens: list[int]
    stops: list[str]
    render: _native.ChatRender | None = None


def render_prompt(
    model: ResolvedModel,
    loaded: LoadedModel,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str = "auto",
    think: bool | str | None = None,
    template: str | None = None,
) -> Prompt:
    """The conversation through the model's template: an Ollama Go TEMPLATE layer (or `template`,
    a request's override) is rendered as Ollama renders it; otherwise the GGUF's Jinja template
    (which a Jinja TEMPLATE layer replaces)."""
    template = template if template is not None else model.view.template or ""
    if is_go_template(template):
        return go_template_prompt(loaded, render_go_template(template, None, messages, tools, think=think))
    try:
        rendered = loaded.render_chat(
            messages,
            tools_json=orjson.dumps(tools).decode() if tools else "",
            tool_choice=tool_choice,
            enable_thinking=think is not False,
            **({"template_override": template} if is_jinja(template) else {}),
        )
    except (RuntimeError, ValueError) as exc:
        raise InvalidRequest(f"failed to render the chat template: {exc}") from exc
    tokens = loaded.tokenize(rendered.prompt, add_special=True, parse_special=True)
    return Prompt(tokens, list(rendered.additional_stops), rendered)


def go_template_prompt(loaded: LoadedModel, text: str) -> Prompt:
    """Tokens of a prompt a Go template rendered (special tokens parsed, BOS added once even if
    the template writes it too)."""
    tokens = loaded.tokenize(text, add_special=True, parse_special=True)
    bos = loaded.tokenize("", add_special=True, parse_special=False)
    if len(bos) == 1 and tokens[:2] == bos * 2:
        tokens = tokens[1:]
    return Prompt(tokens, [])


def set_request_flags(
    gen: GenerationOptions,
    fmt: str | dict[str, Any] | None,
    logprobs: bool,
    top_logprobs: int,
    truncate: bool | None = None,
    shift: bool | None = None,
) -> None:
    gen.grammar = grammar_for_format(fmt)
    gen.logprobs = logprobs
    gen.top_logprobs = top_logprobs
    gen.truncate = True if truncate is None else truncate
    gen.shift = True if shift is None else shift


_ROOT_RULE = re.compile(r"^root ::= .*$", re.MULTILINE)
_TOOL_CALLS_RULE = re.compile(r"^tool-calls ::= ", re.MULTILINE)


def calls_only_grammar(grammar: str) -> str | None:
    """llama.cpp's tool grammar lets text come before the calls even when a call is required; this
    one starts with the calls (None if the grammar has no `tool-calls` rule to start from)."""
    if not _TOOL_CALLS_RULE.search(grammar):
        return None
    return _ROOT_RULE.sub("root ::= space tool-calls", grammar, count=1)


def apply_tool_grammar(
    gen: GenerationOptions, render: _native.ChatRender, *, force_call: bool = False
) -> None:
    """Constrain tool calls with the grammar the template's parser expects (lazy: from the call's
    opening marker on), unless `format` already constrains the whole reply. `force_call` (a
    required or named tool_choice without thinking): the reply is the calls, from its first token."""
    if gen.grammar or not render.grammar:
        return
    gen.preserved_tokens = list(render.preserved_tokens)
    forced = calls_only_grammar(render.grammar) if force_call else None
    if forced is not None:
        gen.grammar = forced
        return
    gen.grammar = render.grammar
    gen.grammar_lazy = render.grammar_lazy
    gen.grammar_triggers = list(render.trigger_words)
    gen.grammar_trigger_patterns = list(render.trigger_patterns)
    gen.generation_prompt = render.generation_prompt
    gen.grammar_from_template = True


@dataclass
class Generation:
    """One request, ready to run: `build` renders the prompt on the loaded model."""

    model: ResolvedModel
    spec: LoadSpec
    gen: GenerationOptions
    keep_alive: float | None
    build: Callable[[LoadedModel], Prompt]
    parse_reply: bool = False  # split thinking / tool calls out of the text
    parse_reasoning: bool = True
    force_tool_call: bool = False  # tool_choice required / named, thinking off


@dataclass
class ReplyPiece:
    """Newly decided reply text (possibly empty while the parser holds markup back)."""

    delta: ReplyDelta
    chunk: Chunk


@dataclass
class ReplyEnd:
    delta: ReplyDelta  # what the parser released at the end (rest of the text, pending tool calls)
    completion: Completion
    load_duration: int
    tool_calls_sent: int = 0


def logprobs_wire(chunk: Chunk, top: int) -> list[dict[str, Any]]:
    """Logprobs of the tokens in one engine chunk: `{token, logprob, bytes[, top_logprobs]}` (the
    same objects in Ollama's and OpenAI's wire formats)."""
    out = []
    for lp in chunk.logprobs or []:
        item: dict[str, Any] = {
            "token": lp.text.decode("utf-8", errors="replace"),
            "logprob": lp.logprob,
            "bytes": list(lp.text),
        }
        if top > 0:
            item["top_logprobs"] = [
                {"token": text.decode("utf-8", errors="replace"), "logprob": value, "bytes": list(text)}
                for _, text, value in lp.top[:top]
            ]
        out.append(item)
    return out


def wants_parsing(model: ResolvedModel, think: bool | str | None, tools: object) -> bool:
    return bool(tools) or ("thinking" in model.capabilities and think is not False)


async def run_reply(state: Any, job: Generation) -> AsyncIterator[ReplyPiece | ReplyEnd]:
    """Hold a runner, run the request, yield reply pieces and then the end. Closing the iterator
    cancels the engine request and releases the runner."""
    started = time.perf_counter()
    runner, load_duration = await acquire(state, job.model, job.spec)
    first_token: float | None = None
    try:
        prompt = job.build(runner.loaded)
        job.gen.stop = merged_stops(job.gen, prompt.stops)
        parser = None
        if job.parse_reply and prompt.render is not None:
            apply_tool_grammar(job.gen, prompt.render, force_call=job.force_tool_call)
            parser = ReplyParser(prompt.render, parse_reasoning=job.parse_reasoning)
        calls = 0
        async for item in generate(runner.loaded, prompt.tokens, job.gen):
            if isinstance(item, Chunk):
                if first_token is None and item.tokens:
                    first_token = time.perf_counter() - started
                delta = parser.feed(item.text) if parser else ReplyDelta(content=item.text)
                calls += len(delta.tool_calls)
                yield ReplyPiece(delta, item)
            else:
                delta = parser.finish() if parser else ReplyDelta()
                state.metrics.observe_generation(
                    job.model.key,
                    prompt=item.prompt_tokens,
                    cached=item.cached_tokens,
                    generated=item.eval_count,
                    reason=item.done_reason,
                    ttft=first_token,
                    total=time.perf_counter() - started,
                    decode=item.eval_duration / 1e9,
                )
                yield ReplyEnd(delta, item, load_duration, calls + len(delta.tool_calls))
    finally:
        state.scheduler.release(runner, job.keep_alive)


async def collect_reply(state: Any, job: Generation) -> tuple[ReplyDelta, ReplyEnd]:
    """Run `job` to the end: the whole reply (content, thinking, tool calls) and how it ended."""
    whole = ReplyDelta()
    end: ReplyEnd | None = None
    async for item in run_reply(state, job):
        whole.add(item.delta)
        if isinstance(item, ReplyEnd):
            end = item
    assert end is not None, "the engine always ends a request with a completion"
    return whole, end
