"""The one chat pipeline under every API family and the CLI.

    ChatJob ─► plan_chat:  resolve the name in the store → check capabilities → the model's layers
               in Ollama's order (SYSTEM unless the request starts with its own system message,
               MESSAGE history, then the request; PARAMETER defaults under the request's options;
               TEMPLATE; ADAPTER in the load spec) → the load spec and the merged options
            ─► run_chat:   acquire the runner → render (chat template, raw, or fill-in-the-middle)
               → grammar (format / tool calls, forced when tool_choice requires) → generate →
               parse the reply (content / thinking / tool calls) → release → metrics
            ─► events:     ReplyPiece … ReplyEnd (each family shapes them into its wire format)

`render_only` stops after rendering (`_debug_render_only`, and the hook tests and the CLI use).
Errors found before the first event (unknown model, bad options, a full queue, a prompt the
engine refuses) are raised from the first step of the iterator, so they keep their HTTP status.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from a3s_power.chat.gotemplate import GoTemplateError, GoTemplateExecError, is_go_template, render_go_template
from a3s_power.chat.jinja_guard import check_jinja_template
from a3s_power.chat.reply import ReplyDelta, ReplyParser
from a3s_power.errors import InvalidRequest
from a3s_power.runtime.generation import Chunk, Completion, GenerationOptions, generate
from a3s_power.runtime.grammar import check_schema, compile_off_loop, grammar_for_format, grammar_for_schema
from a3s_power.runtime.loaded import ChatRender, LoadedModel
from a3s_power.runtime.media import MEDIA_MARKER, DecodedImage, decode_image
from a3s_power.runtime.scheduler import LoadSpec, Runner
from a3s_power.service.generic_tools import GenericReplyParser, generic_messages, generic_schema
from a3s_power.service.images import fetch_image, remote_images_refused
from a3s_power.service.job import ChatJob, ChatMessage, ToolCall
from a3s_power.service.models import (
    ResolvedModel,
    acquire_runner,
    check_logprobs,
    check_think,
    load_or_unload,
    load_plan,
    release_runner,
    require,
    resolve,
    since,
)
from a3s_power.service.state import ServerState
from a3s_power.store.show import is_jinja

log = logging.getLogger(__name__)

__all__ = ["ChatPlan", "Prompt", "ReplyEnd", "ReplyPiece", "collect_chat", "load_only", "plan_chat",
           "render_only", "run_chat"]  # fmt: skip


class _Parser(Protocol):
    def feed(self, piece: str) -> ReplyDelta: ...
    def finish(self) -> ReplyDelta: ...


@dataclass
class Prompt:
    """A rendered prompt: its text (what `_debug_render_only` shows), tokens, extra stops."""

    text: str
    tokens: list[int]
    stops: list[str] = field(default_factory=list)
    render: ChatRender | None = None
    media: Any = None  # _native.MediaPrompt: the tokens with the images' runs (replaces `tokens`)

    @property
    def image_count(self) -> int:
        return len(self.media.spans) if self.media is not None else 0


@dataclass
class ReplyPiece:
    """Newly decided reply text (possibly empty while the parser holds markup back)."""

    delta: ReplyDelta
    chunk: Chunk


@dataclass
class ReplyEnd:
    delta: ReplyDelta  # what the parser released at the end (rest of the text, pending tool calls)
    completion: Completion
    load_duration: int  # ns from the request's start to its runner being ready (never 0)
    tool_calls_sent: int = 0
    total_duration: int = 0

    @property
    def done_reason(self) -> str:
        return self.completion.done_reason

    @property
    def cached_tokens(self) -> int:
        return self.completion.cached_tokens


@dataclass
class ChatPlan:
    """A job checked against its model, with the model's layers applied: ready to run."""

    job: ChatJob
    model: ResolvedModel
    options: GenerationOptions
    spec: LoadSpec
    messages: list[dict[str, Any]]  # template-shaped, layers applied
    tools: list[dict[str, Any]]
    generic_tools: bool  # the template has no tools: llama.cpp's generic JSON format
    think: bool | str | None
    parse: bool  # split thinking / tool calls out of the text
    template: str = ""  # a Jinja template replacing the model's own ("" = the model's)
    go_template: str = ""  # an Ollama Go TEMPLATE (layer or request): rendered by chat.gotemplate
    images: list[DecodedImage | None] = field(default_factory=list)  # prompt order; None: a URL to fetch
    remote_images: dict[int, str] = field(default_factory=dict)  # index in `images` → http(s) URL
    tools_grammar: str = ""  # generic / Go-template forced tools: their schema's GBNF (compile_grammars)

    @property
    def forced(self) -> bool:
        return bool(self.tools) and self.job.tool_choice == "required"


# -- plan ---------------------------------------------------------------------------------------
def _layered(model: ResolvedModel, job: ChatJob) -> list[ChatMessage]:
    """The model's SYSTEM and MESSAGE layers around the request's messages, as Ollama orders them.

    /api/chat (and every surface Ollama translates into it; `server/routes.go` ChatHandler):
    the MESSAGE history, then the request's messages; SYSTEM goes first only when the request's
    first message is not a system message (a request's own system message stays where it is,
    after the history). /api/generate (GenerateHandler): the request's `system` or else SYSTEM,
    the MESSAGE history (only without `context`), then the prompt."""
    request = list(job.messages)
    history = [_stored_message(m) for m in model.view.messages]
    system = [ChatMessage("system", model.view.system)] if model.view.system else []
    if job.prompt_mode:
        leading = [request.pop(0)] if request and request[0].role == "system" else system
        return [*leading, *([] if job.context is not None else history), *request]
    if request and request[0].role == "system":
        system = []
    return [*system, *history, *request]


def _stored_message(message: dict[str, Any]) -> ChatMessage:
    return ChatMessage(str(message.get("role", "user")).lower(), str(message.get("content", "")))


def plan_chat(state: ServerState, job: ChatJob) -> ChatPlan:
    """Check `job` against its model and apply the model's layers (raises the request's errors)."""
    model = resolve(state, job.model)
    require(model, "completion", job.what)
    check_logprobs(job.top_logprobs)
    think = job.think
    if job.drop_unsupported_think and not model.thinks:
        think = None
    check_think(model, think)
    if think is None and model.thinks:  # Ollama: a model that can think does unless told not to
        think = True
    if job.raw and (job.template or job.context or any(m.role == "system" for m in job.messages)):
        raise InvalidRequest("raw mode does not support template, system, or context")
    layered = _layered(model, job)
    images: list[DecodedImage | None] = []
    remote: dict[int, str] = {}
    if any(m.image_parts for m in layered):
        require(model, "vision", "vision")
        if job.suffix:
            raise InvalidRequest("images cannot be combined with suffix (fill-in-the-middle)")
        for i, part in enumerate(p for m in layered for p in m.image_parts):
            if part.url and not part.data:  # fetched (when enabled) by run_chat / render_only
                if not state.settings.image_urls:
                    raise remote_images_refused(i)
                images.append(None)
                remote[i] = part.url
            else:
                images.append(decode_image(part.data, i))
    tools = list(job.tools) if job.tool_choice != "none" else list(job.tools)
    generic = bool(tools) and job.tool_choice != "none" and "tools" not in model.capabilities
    options, spec = load_plan(state, model, job.options)
    options.logprobs = job.logprobs
    options.top_logprobs = job.top_logprobs
    options.truncate = True if job.truncate is None else job.truncate
    options.shift = True if job.shift is None else job.shift
    options.ignore_eos = job.ignore_eos
    template = job.template or model.view.template or ""
    if is_go_template(template) and tools and not generic and job.tool_choice == "required":
        think = False  # a Go template's call is forced from the first token: no reasoning first
    parse = not job.raw and not job.suffix and (bool(tools) or (model.thinks and think is not False))
    messages = [m.to_template(MEDIA_MARKER if images else "") for m in layered]
    state.scheduler.admit(model.key)  # a full queue is a 503 before any response starts
    return ChatPlan(job, model, options, spec, messages, tools, generic, think, parse,
                    template if is_jinja(template) else "",
                    template if is_go_template(template) else "", images, remote)  # fmt: skip


async def fetch_remote_images(state: ServerState, plan: ChatPlan) -> None:
    """Fetch and check the plan's http(s) images (A3S_POWER_IMAGE_URLS), in request order."""
    settings = state.settings
    for i, url in sorted(plan.remote_images.items()):
        data = await fetch_image(
            url,
            i,
            timeout=settings.image_url_timeout,
            max_bytes=settings.image_url_max_bytes,
            allow_private=settings.image_url_allow_private,
        )
        plan.images[i] = decode_image(data, i)
    plan.remote_images = {}


async def load_only(state: ServerState, job: ChatJob) -> str:
    """A request with nothing to generate: load the model ("load"), or keep_alive 0 unloads it."""
    model = resolve(state, job.model)
    require(model, "completion", job.what)
    _, spec = load_plan(state, model, job.options)
    return await load_or_unload(state, model, spec, job.keep_alive)


# -- render -------------------------------------------------------------------------------------
def _fim_prompt(loaded: LoadedModel, plan: ChatPlan, prefix: str) -> Prompt:
    fim = loaded.fim_tokens()
    if fim is None:
        raise InvalidRequest(f"{plan.model.key} does not support insert")
    pre, suf, mid = fim
    tokens = [pre, *loaded.tokenize(prefix, add_special=False), suf,
              *loaded.tokenize(plan.job.suffix, add_special=False), mid]  # fmt: skip
    if loaded.info.add_bos:
        tokens.insert(0, loaded.info.bos_token)
    return Prompt(loaded.detokenize(tokens, unparse_special=True), tokens)


def _go_prompt(loaded: LoadedModel, plan: ChatPlan) -> Prompt:
    """The prompt an Ollama Go template renders (tokens: special tokens parsed, one BOS)."""
    job = plan.job
    try:
        if job.suffix:
            prefix = job.messages[-1].content if job.messages else ""
            text = render_go_template(plan.go_template, None, [], prompt=prefix, suffix=job.suffix,
                                      think=plan.think)  # fmt: skip
        else:
            messages, tools = plan.messages, plan.tools
            if plan.generic_tools:  # a template without .Tools: the tools go in the system message
                messages, tools = generic_messages(messages, tools, plan.forced), []
            text = render_go_template(plan.go_template, None, messages, tools or None, think=plan.think)
    except GoTemplateError as exc:
        if job.template and not isinstance(exc, GoTemplateExecError):
            raise GoTemplateExecError(str(exc)) from None  # Ollama parses a request's template: 500
        raise
    tokens = loaded.tokenize(text, add_special=True, parse_special=True)
    bos = loaded.tokenize("", add_special=True, parse_special=False)
    twice = len(bos) == 1 and tokens[:2] == bos * 2  # the template wrote the BOS the tokenizer adds
    if plan.images:
        return _media_prompt(loaded, plan, text, add_special=not twice)
    if twice:
        tokens = tokens[1:]
    if job.context:
        tokens = list(job.context) + tokens
    return Prompt(text, tokens)


def _media_prompt(loaded: LoadedModel, plan: ChatPlan, text: str, *, add_special: bool = True,
                  stops: list[str] | None = None, rendered: ChatRender | None = None) -> Prompt:  # fmt: skip
    """A prompt with images: mtmd splits the text at the markers and gives each image its run."""
    if loaded.projector is None:
        raise InvalidRequest(f'"{plan.job.model}" does not support vision')
    images = [im for im in plan.images if im is not None]
    if len(images) != len(plan.images):
        raise InvalidRequest("image URLs were not fetched")
    try:
        media = loaded.projector.tokenize(text, [im.native() for im in images], add_special, True,
                                          list(plan.job.context or []))  # fmt: skip
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return Prompt(text, list(media.tokens), list(stops or []), rendered, media)


def render(loaded: LoadedModel, plan: ChatPlan) -> Prompt:
    """The prompt on the loaded model: raw text, fill-in-the-middle, or the chat template."""
    job = plan.job
    if job.raw:  # verbatim, special tokens included (as llama-server's /completion reads it)
        last = job.messages[-1] if job.messages else None
        if plan.images and last is not None:
            return _media_prompt(loaded, plan, last.content_with_media(MEDIA_MARKER))
        text = last.content if last else ""
        return Prompt(text, loaded.tokenize(text, add_special=True, parse_special=True))
    if plan.go_template and (not job.suffix or ".Suffix" in plan.go_template):
        return _go_prompt(loaded, plan)
    if job.suffix:
        return _fim_prompt(loaded, plan, job.messages[-1].content if job.messages else "")
    messages, tools, tool_choice = plan.messages, plan.tools, job.tool_choice
    if plan.generic_tools:
        messages = generic_messages(messages, tools, plan.forced)
        tools, tool_choice = [], "auto"
    source = plan.template or loaded.template_override or loaded.info.chat_template or ""
    if source:  # minja has no recursion limit: a recursive macro must be a 400, not a SIGSEGV
        check_jinja_template(source, messages, tools or None)
    try:
        rendered = loaded.render_chat(
            messages,
            tools_json=orjson.dumps(tools).decode() if tools else "",
            tool_choice=tool_choice,
            enable_thinking=plan.think is not False,
            **({"template_override": plan.template} if plan.template else {}),
        )
    except (RuntimeError, ValueError) as exc:
        raise InvalidRequest(f"failed to render the chat template: {exc}") from exc
    if plan.images:
        return _media_prompt(
            loaded, plan, rendered.prompt, stops=list(rendered.additional_stops), rendered=rendered
        )
    tokens = loaded.tokenize(rendered.prompt, add_special=True, parse_special=True)
    if job.context:
        tokens = list(job.context) + tokens
    return Prompt(rendered.prompt, tokens, list(rendered.additional_stops), rendered)


async def render_only(state: ServerState, job: ChatJob) -> Prompt:
    """Render `job` as the pipeline would run it, without generating (the model is loaded for
    its tokenizer and template, then released)."""
    plan = plan_chat(state, job)
    await fetch_remote_images(state, plan)
    runner = await acquire_runner(state, plan.model, plan.spec)
    try:
        return render(runner.loaded, plan)
    finally:
        release_runner(state, runner, job.keep_alive)


# -- grammar ------------------------------------------------------------------------------------
_ROOT_RULE = re.compile(r"^root ::= .*$", re.MULTILINE)
_TOOL_CALLS_RULE = re.compile(r"^tool-calls ::= ", re.MULTILINE)
_TOOL_CALL_RULE = re.compile(r"^tool-call ::= ", re.MULTILINE)
_TEXT_BEFORE_CALLS = re.compile(r"\s+until-\d+\?\s+tool-calls\s*$")
_REASONING_TEXT = re.compile(r'until-\d+(?=(?:\s+"\\n"\?)?\s+"</)')
# A forced call after reasoning: the reasoning may take this share of num_predict (in characters,
# at ~2 per token), so the call still fits; without num_predict, this many characters.
_REASONING_SHARE = 0.5
_REASONING_CHARS_UNLIMITED = 4000


def _reasoning_budget(num_predict: int) -> int:
    if num_predict <= 0:
        return _REASONING_CHARS_UNLIMITED
    return max(8, int(num_predict * _REASONING_SHARE) * 2)


def calls_only_grammar(grammar: str, *, keep_reasoning: bool, num_predict: int = -1) -> str | None:
    """llama.cpp's tool grammar lets text come before the calls even when a call is required; this
    one goes straight to one call (after a bounded reasoning block when `keep_reasoning`, so the
    call still fits in num_predict). None if the grammar has no `tool-calls` rule to start from."""
    if not _TOOL_CALLS_RULE.search(grammar):
        return None
    calls = "tool-call" if _TOOL_CALL_RULE.search(grammar) else "tool-calls"
    if not keep_reasoning:
        return _ROOT_RULE.sub(f"root ::= space {calls}", grammar, count=1)
    root = _ROOT_RULE.search(grammar)
    if root is None or not _TEXT_BEFORE_CALLS.search(root.group(0)):
        return None
    line = _TEXT_BEFORE_CALLS.sub(f" space {calls}", root.group(0))
    line = _REASONING_TEXT.sub("forced-reasoning", line, count=1)
    budget = f"forced-reasoning ::= [^<]{{0,{_reasoning_budget(num_predict)}}}"
    return grammar[: root.start()] + line + "\n" + budget + grammar[root.end() :]


def apply_grammar(options: GenerationOptions, plan: ChatPlan, render: ChatRender | None) -> None:
    """Constrain the reply: `format` constrains all of it (already set); generic tools get their
    JSON schema; template tools get the template's (lazy) grammar, or, when a call is required,
    one that starts with the calls (after the reasoning, when the model thinks)."""
    if options.grammar:
        return
    if plan.generic_tools:
        options.grammar = plan.tools_grammar
        return
    if plan.go_template and plan.forced:  # a Go template's own call format, from the first token
        from a3s_power.chat.gotemplate import parse_go_template
        from a3s_power.chat.gotemplate.tools import forced_call_grammar, tool_call_tag

        tag = tool_call_tag(parse_go_template(plan.go_template))
        options.grammar = forced_call_grammar(plan.tools_grammar, tag)
        return
    if render is None or not render.grammar or not plan.tools or plan.job.tool_choice == "none":
        return
    options.preserved_tokens = list(render.preserved_tokens)
    if plan.forced:
        thinking = plan.model.thinks and plan.think is not False and render.supports_thinking
        forced = calls_only_grammar(render.grammar, keep_reasoning=thinking, num_predict=options.num_predict)
        if forced is not None and not thinking:
            options.grammar = forced
            return
        if forced is not None:  # starts at the generation prompt, like the template's own
            options.grammar = forced
            options.generation_prompt = render.generation_prompt
            options.grammar_from_template = True
            return
    options.grammar = render.grammar
    options.grammar_lazy = render.grammar_lazy
    options.grammar_triggers = list(render.trigger_words)
    options.grammar_trigger_patterns = list(render.trigger_patterns)
    options.generation_prompt = render.generation_prompt
    options.grammar_from_template = True


def _tools_schema(plan: ChatPlan) -> Any | None:
    """The JSON schema whose grammar `apply_grammar` puts on the tools (None: the template's own)."""
    if plan.generic_tools:
        return generic_schema(plan.tools, plan.forced)
    if plan.go_template and plan.forced:
        from a3s_power.chat.gotemplate.tools import forced_call_schema

        return forced_call_schema(plan.tools)
    return None


def _check_tools(tools: list[dict[str, Any]]) -> str:
    """Tool parameter schemas go to llama.cpp's converter too (in the template's tool grammar):
    the same bounds as `format`'s, each a 400 naming the tool's field."""
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        parameters = function.get("parameters") if isinstance(function, dict) else None
        if parameters is not None:
            check_schema(parameters, f"tools[{i}].function.parameters")
    return ""


async def compile_grammars(state: ServerState, plan: ChatPlan) -> None:
    """Every JSON schema of the request (`format` / `response_format`, the tools') checked and
    converted to GBNF on a worker thread, each bounded by `grammar_timeout`: the one helper every
    API family's schemas go through, so none is converted on the event loop."""
    timeout = state.settings.grammar_timeout
    job = plan.job
    if plan.tools:
        await compile_off_loop(lambda: _check_tools(plan.tools), "tools", timeout)
    if job.format is not None and job.format != "":
        fmt, name = job.format, job.format_field
        plan.options.grammar = await compile_off_loop(lambda: grammar_for_format(fmt, name), name, timeout)
        return
    schema = _tools_schema(plan)
    if schema is not None:
        compile_ = lambda: grammar_for_schema(schema, "tools")  # noqa: E731
        plan.tools_grammar = await compile_off_loop(compile_, "tools", timeout)


def _merged_stops(options: GenerationOptions, extra: list[str]) -> list[str]:
    seen: list[str] = []
    for stop in [*options.stop, *extra]:
        if stop and stop not in seen:
            seen.append(stop)
    return seen


def _go_parser(plan: ChatPlan, prompt: Prompt) -> _Parser | None:
    """A Go template's reply: thinking between the tags the template puts around `.Thinking`
    (when thinking is on), then content, or the template's tool calls when tools are offered."""
    from a3s_power.chat.gotemplate import infer_thinking_tags, parse_go_template
    from a3s_power.chat.gotemplate.thinking import ThinkingParser
    from a3s_power.chat.gotemplate.tools import GoToolParser, tool_call_tag

    template = parse_go_template(plan.go_template)
    calls: _Parser | None = None
    if plan.tools and plan.job.tool_choice != "none":
        calls = GoToolParser(tool_call_tag(template), plan.tools)
    opening, closing = infer_thinking_tags(template)
    if not (opening and closing) or plan.think in (None, False) or plan.job.raw or plan.job.suffix:
        return calls
    parser = ThinkingParser(opening, closing, calls)
    if prompt.text.rstrip().endswith(opening):  # the template opened the block: the reply thinks
        parser.feed(opening)
    return parser


def _parser(plan: ChatPlan, prompt: Prompt) -> _Parser | None:
    if plan.generic_tools:
        return GenericReplyParser(plan.forced)
    if plan.go_template:
        return _go_parser(plan, prompt)
    if plan.parse and prompt.render is not None:
        return ReplyParser(prompt.render, parse_reasoning=plan.model.thinks)
    return None


# -- run ----------------------------------------------------------------------------------------
def _prepare(loaded: LoadedModel, plan: ChatPlan) -> tuple[Prompt, _Parser | None]:
    """The prompt's tokens, stops, grammar and reply parser (runs on a worker thread)."""
    prompt = render(loaded, plan)
    options = plan.options
    options.stop = _merged_stops(options, prompt.stops)
    apply_grammar(options, plan, prompt.render)
    return prompt, _parser(plan, prompt)


async def run_chat(state: ServerState, job: ChatJob | ChatPlan) -> AsyncIterator[ReplyPiece | ReplyEnd]:
    """Run the pipeline: ReplyPieces as text is decided, then one ReplyEnd. Closing the iterator
    (a client that went away) cancels the engine request and releases the runner."""
    plan = job if isinstance(job, ChatPlan) else plan_chat(state, job)
    await compile_grammars(state, plan)
    await fetch_remote_images(state, plan)
    started = plan.job.started_ns
    runner: Runner = await acquire_runner(state, plan.model, plan.spec)
    load_duration = since(started)
    first_token: float | None = None
    try:
        # rendering and tokenizing a long conversation (or a 10 MB message) takes seconds: off the loop
        prompt, parser = await asyncio.to_thread(_prepare, runner.loaded, plan)
        options = plan.options
        calls = 0
        async for item in generate(runner.loaded, prompt.tokens, options, prompt.media):
            if isinstance(item, Chunk):
                if first_token is None and item.tokens:
                    first_token = since(started) / 1e9
                delta = parser.feed(item.text) if parser else ReplyDelta(content=item.text)
                if plan.forced and not delta.content.strip():  # a forced call: only whitespace
                    delta.content = ""
                calls += len(delta.tool_calls)
                yield ReplyPiece(delta, item)
                continue
            delta = parser.finish() if parser else ReplyDelta()
            if plan.forced and not delta.content.strip():
                delta.content = ""
            total = since(started)
            if item.truncated:
                log.warning(
                    "truncating input prompt: limit=%d prompt=%d keep=%d new=%d",
                    runner.spec.num_ctx, len(prompt.tokens), options.num_keep,
                    len(prompt.tokens) - item.truncated,
                )  # fmt: skip
            state.metrics.observe_generation(
                plan.model.key,
                prompt=item.prompt_tokens,
                cached=item.cached_tokens,
                generated=item.eval_count,
                reason=item.done_reason,
                ttft=first_token,
                total=total / 1e9,
                decode=item.eval_duration / 1e9,
                image_tokens=item.media_tokens,
                image_encode=item.media_encode_duration / 1e9 if item.media_chunks else None,
            )
            yield ReplyEnd(delta, item, load_duration, calls + len(delta.tool_calls), total)
    finally:
        release_runner(state, runner, plan.job.keep_alive)


async def collect_chat(
    state: ServerState, job: ChatJob | ChatPlan
) -> tuple[ReplyDelta, ReplyEnd, list[Chunk]]:
    """Run to the end: the whole reply (content, thinking, tool calls), how it ended, its chunks."""
    whole = ReplyDelta()
    chunks: list[Chunk] = []
    end: ReplyEnd | None = None
    async for item in run_chat(state, job):
        whole.add(item.delta)
        if isinstance(item, ReplyEnd):
            end = item
        else:
            chunks.append(item.chunk)
    if end is None:  # the engine always ends a request with a completion
        raise RuntimeError("the generation ended without a completion")
    return whole, end, chunks


def tool_calls_of(delta: ReplyDelta) -> list[ToolCall]:
    """The parsed calls of a reply, typed."""
    return [
        ToolCall(c["function"]["name"], c["function"]["arguments"], c["id"], c["function"]["index"])
        for c in delta.tool_calls
    ]


def elapsed_ms(started_ns: int) -> float:
    return (time.perf_counter_ns() - started_ns) / 1e6
