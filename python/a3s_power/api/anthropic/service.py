"""Anthropic's Messages API, a translator in front of the chat pipeline: content blocks in (text, thinking,
tool_use, tool_result), content blocks out, and the SSE event sequence Anthropic's SDK expects.

Beyond Ollama's compatibility layer: `tool_choice` is honoured (auto / any / tool / none; a forced
call is grammar-constrained from its first token) and tool inputs stream as `input_json_delta`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from a3s_power.api.anthropic.protocol import (
    BlockDelta,
    ContentBlock,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    DebugMessage,
    InputJsonDelta,
    Message,
    MessageDelta,
    MessagesRequest,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StartUsage,
    StopDelta,
    StreamEvent,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
    Usage,
)
from a3s_power.api.ollama.protocol import DebugInfo
from a3s_power.chat.reply import ReplyDelta
from a3s_power.errors import InvalidRequest
from a3s_power.service import chat as pipeline
from a3s_power.service.chat import ReplyEnd
from a3s_power.service.images import anthropic_image
from a3s_power.service.job import ChatJob, ChatMessage, ContentPart, ToolCall, ToolChoice, function_tool
from a3s_power.service.state import ServerState


def _text_of(content: Any, where: str = "content") -> str:
    """A `string | [blocks]` field's text (text blocks joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: expected a string or an array of content blocks")
    parts = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "image":
            raise InvalidRequest(f"{where}: images are only accepted in user messages")
    return "\n".join(parts)


def _messages(req: MessagesRequest) -> list[ChatMessage]:
    """Anthropic messages → the pipeline's."""
    if not req.messages:
        raise InvalidRequest("messages: at least one message is required")
    out: list[ChatMessage] = []
    names: dict[str, str] = {}  # tool_use id → tool name, for the results
    n_images = 0
    system = _text_of(req.system, "system")
    if system:
        out.append(ChatMessage("system", system))
    for message in req.messages:
        if not isinstance(message, dict):
            raise InvalidRequest("messages: each message must be an object")
        role = str(message.get("role", "")).lower()
        content = message.get("content")
        if role == "system":  # newer Claude Code sends system turns inside messages
            out.append(ChatMessage("system", _text_of(content)))
            continue
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages: unexpected role {role!r}")
        if isinstance(content, str):
            out.append(ChatMessage(role, content))
            continue
        if not isinstance(content, list):
            raise InvalidRequest("messages.content: expected a string or an array of content blocks")
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        parts: list[ContentPart] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                texts.append(str(block.get("text", "")))
                parts.append(ContentPart("text", text=texts[-1]))
            elif kind == "thinking":
                thinking.append(str(block.get("thinking", "")))
            elif kind == "redacted_thinking":
                continue
            elif kind == "tool_use":
                arguments = block.get("input") or {}
                if not isinstance(arguments, dict):
                    raise InvalidRequest("messages: tool_use input must be an object")
                calls.append(
                    ToolCall(str(block.get("name", "")), arguments, str(block.get("id", "")), len(calls))
                )
                names[calls[-1].id] = calls[-1].name
            elif kind == "tool_result":
                call_id = str(block.get("tool_use_id", ""))
                result = _text_of(block.get("content"))
                name = names.get(call_id, "")
                out.append(ChatMessage("tool", result, tool_name=name, tool_call_id=call_id))
            elif kind == "image":
                parts.append(anthropic_image(block, n_images))
                n_images += 1
            else:
                raise InvalidRequest(f"messages: unsupported content block type {kind!r}")
        has_images = any(p.kind == "image" for p in parts)
        if texts or thinking or calls or has_images or role == "assistant":
            out.append(ChatMessage(role, "\n".join(texts), "\n".join(thinking), calls,
                                   parts=parts if has_images else []))  # fmt: skip
    return out


def _tools(req: MessagesRequest) -> tuple[list[dict[str, Any]], ToolChoice]:
    """Anthropic tools and tool_choice → OpenAI-shaped tools and the pipeline's tool_choice."""
    tools: list[dict[str, Any]] = [
        function_tool(str(t.get("name", "")), str(t.get("description", "")), t.get("input_schema"))
        for t in req.tools or []
        if t.get("name") and "input_schema" in t  # server tools (web_search, …) are not ours to run
    ]
    choice = (req.tool_choice or {}).get("type", "auto")
    if not tools or choice == "auto":
        return tools, "auto"
    if choice == "none":
        return tools, "none"
    if choice == "any":
        return tools, "required"
    if choice == "tool":
        name = (req.tool_choice or {}).get("name")
        chosen = [t for t in tools if t["function"]["name"] == name]
        if not chosen:
            raise InvalidRequest(f"tool_choice: no tool named {name!r}")
        return chosen, "required"
    raise InvalidRequest(f"tool_choice: unknown type {choice!r}")


def _options(req: MessagesRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if req.max_tokens is not None:
        if req.max_tokens < 1:
            raise InvalidRequest(f"max_tokens: must be at least 1, got {req.max_tokens}")
        options["num_predict"] = req.max_tokens
    for key, value in (("temperature", req.temperature), ("top_p", req.top_p), ("top_k", req.top_k)):
        if value is not None:
            options[key] = value
    if req.stop_sequences:
        options["stop"] = list(req.stop_sequences)
    return options


@dataclass
class MessagesRun:
    plan: pipeline.ChatPlan
    model: str
    id: str = field(default_factory=lambda: "msg_" + secrets.token_hex(12))


def messages_job(req: MessagesRequest) -> ChatJob:
    tools, tool_choice = _tools(req)
    think: bool | None = None
    if req.thinking is not None:  # a model that cannot think drops the request silently (Ollama)
        think = req.thinking.type == "enabled"
    return ChatJob(
        model=req.model,
        messages=_messages(req),
        tools=tools,
        tool_choice=tool_choice,
        think=think,
        options=_options(req),
        drop_unsupported_think=True,
        debug_render_only=req.debug_render_only,
    )


def prepare_messages(state: ServerState, req: MessagesRequest) -> MessagesRun:
    return MessagesRun(pipeline.plan_chat(state, messages_job(req)), req.model)


def _stop_reason(end: ReplyEnd) -> str:
    if end.completion.done_reason == "length":
        return "max_tokens"
    return "tool_use" if end.tool_calls_sent else "end_turn"


def _usage(end: ReplyEnd) -> Usage:
    """Anthropic's input_tokens counts only what was not read from the cache."""
    return Usage(
        input_tokens=end.completion.prompt_eval_count,
        output_tokens=end.completion.eval_count,
        cache_read_input_tokens=end.cached_tokens,
    )


def _tool_use_block(call: dict[str, Any]) -> ToolUseBlock:
    function = call["function"]
    return ToolUseBlock("toolu_" + call["id"].removeprefix("call_"), function["name"], function["arguments"])


async def message(state: ServerState, run: MessagesRun) -> Message | DebugMessage:
    if run.plan.job.debug_render_only:
        prompt = await pipeline.render_only(state, run.plan.job)
        return DebugMessage(id=run.id, model=run.model, debug_info=DebugInfo(prompt.text))
    whole, end, _ = await pipeline.collect_chat(state, run.plan)
    content: list[ContentBlock] = []
    if whole.thinking:
        content.append(ThinkingBlock(whole.thinking))
    if whole.content or not whole.tool_calls:
        content.append(TextBlock(whole.content))
    content += [_tool_use_block(call) for call in whole.tool_calls]
    return Message(id=run.id, model=run.model, content=content, stop_reason=_stop_reason(end),
                   usage=_usage(end))  # fmt: skip


Named = tuple[str, StreamEvent]


class BlockStream:
    """Reply deltas → Anthropic's content-block events: a block opens when output of a new kind
    (thinking, text, a tool call) starts and closes when another kind begins or the reply ends."""

    def __init__(self) -> None:
        self.index = -1
        self.kind = ""

    def _open(self, kind: str, block: ContentBlock) -> list[Named]:
        events = self._close()
        self.index += 1
        self.kind = kind
        events.append(("content_block_start", ContentBlockStart(self.index, block)))
        return events

    def _close(self) -> list[Named]:
        if not self.kind:
            return []
        events: list[Named] = []
        if self.kind == "thinking":
            events.append(self._delta(SignatureDelta()))
        events.append(("content_block_stop", ContentBlockStop(self.index)))
        self.kind = ""
        return events

    def _delta(self, delta: BlockDelta) -> Named:
        return "content_block_delta", ContentBlockDelta(self.index, delta)

    def feed(self, delta: ReplyDelta) -> list[Named]:
        events: list[Named] = []
        if delta.thinking:
            if self.kind != "thinking":
                events += self._open("thinking", ThinkingBlock(""))
            events.append(self._delta(ThinkingDelta(delta.thinking)))
        if delta.content:
            if self.kind != "text":
                events += self._open("text", TextBlock(""))
            events.append(self._delta(TextDelta(delta.content)))
        for call in delta.tool_calls:
            block = _tool_use_block(call)
            events += self._open("tool_use", ToolUseBlock(block.id, block.name, {}))
            events.append(self._delta(InputJsonDelta(orjson.dumps(block.input).decode())))
        return events

    def finish(self) -> list[Named]:
        events = [] if self.index >= 0 else self._open("text", TextBlock(""))
        return events + self._close()


def _message_start(run: MessagesRun) -> Named:
    return "message_start", MessageStart(Message(id=run.id, model=run.model, content=[], usage=StartUsage()))


async def message_events(state: ServerState, run: MessagesRun) -> AsyncIterator[Named]:
    """message_start (with the first pipeline event, so earlier errors keep their status),
    content blocks, message_delta (stop reason, usage), message_stop."""
    blocks = BlockStream()
    started = False
    async for item in pipeline.run_chat(state, run.plan):
        if not started:
            started = True
            yield _message_start(run)
        for event in blocks.feed(item.delta):
            yield event
        if isinstance(item, ReplyEnd):
            for event in blocks.finish():
                yield event
            yield "message_delta", MessageDelta(StopDelta(_stop_reason(item)), _usage(item))
            yield "message_stop", MessageStop()
