"""OpenAI's Responses API (`POST /v1/responses`), stateless: the request carries the whole
conversation (messages, function calls and their outputs). Output items: `reasoning` (summary
text), `message` (`output_text`), `function_call`; streaming sends the Responses event sequence
(`response.created` … `response.completed`) with `sequence_number`s.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from a3s_power.api.ollama.protocol import DebugInfo
from a3s_power.api.openai.protocol import (
    FunctionCallItem,
    IncompleteDetails,
    InputTokensDetails,
    MessageItem,
    OutputItem,
    OutputText,
    ReasoningItem,
    ResponseEvent,
    ResponseObject,
    ResponsesUsage,
    SummaryText,
)
from a3s_power.api.openai.service import chat_messages, effort_to_think, sampling_options, tool_choice_for
from a3s_power.chat.reply import ReplyDelta
from a3s_power.errors import InvalidRequest, Unsupported
from a3s_power.service import chat as pipeline
from a3s_power.service.chat import ReplyEnd
from a3s_power.service.job import ChatJob, function_tool
from a3s_power.service.state import ServerState


class ResponsesRequest(msgspec.Struct):
    model: str = ""
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    metadata: dict[str, Any] | None = None
    debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")


def _text_parts(content: Any) -> str | list[dict[str, Any]]:
    """A message's text; with images, OpenAI chat content parts (text and image_url) in order."""
    if isinstance(content, str):
        return content
    texts = []
    parts: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text", "")))
            parts.append({"type": "text", "text": texts[-1]})
        elif kind == "input_image":
            if not part.get("image_url"):
                raise InvalidRequest("input_image: only image_url (a data: URL) is supported, not file_id")
            parts.append({"type": "image_url", "image_url": {"url": part.get("image_url")}})
        elif kind in ("input_file", "input_audio"):
            raise Unsupported(f"{kind} inputs are not supported yet")
        else:
            raise InvalidRequest(f"input: unsupported content part type {kind!r}")
    if any(p["type"] == "image_url" for p in parts):
        return parts
    return "\n".join(texts)


def _messages(req: ResponsesRequest) -> list[dict[str, Any]]:
    """Responses input items → the OpenAI-shaped message list llama.cpp's templates take."""
    out: list[dict[str, Any]] = []
    if req.instructions:
        out.append({"role": "system", "content": req.instructions})
    if isinstance(req.input, str):
        out.append({"role": "user", "content": req.input})
        return out
    for item in req.input:
        kind = item.get("type", "message")
        if kind == "message":
            role = str(item.get("role", "user")).lower()
            role = "system" if role == "developer" else role
            out.append({"role": role, "content": _text_parts(item.get("content"))})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id", ""),
                "type": "function",
                "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "{}")},
            }
            if out and out[-1]["role"] == "assistant" and not out[-1]["content"]:
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id", ""),
                    "content": output if isinstance(output, str) else _text_parts(output),
                }
            )
        elif kind == "reasoning":
            continue  # earlier reasoning is not replayed into the prompt
        else:
            raise InvalidRequest(f"input: unsupported item type {kind!r}")
    if not out:
        raise InvalidRequest("input is required")
    return out


def _tools(req: ResponsesRequest) -> list[dict[str, Any]] | None:
    tools = []
    for tool in req.tools or []:
        if tool.get("type") != "function":
            raise InvalidRequest(f"tools: only function tools are supported, not {tool.get('type')!r}")
        tools.append(
            function_tool(str(tool.get("name", "")), str(tool.get("description", "")), tool.get("parameters"))
        )
    return tools or None


def _format(req: ResponsesRequest) -> str | dict[str, Any] | None:
    fmt = (req.text or {}).get("format") or {}
    kind = fmt.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return fmt.get("schema") if isinstance(fmt.get("schema"), dict) else "json"
    raise InvalidRequest(f"text.format: unsupported type {kind!r}")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class ResponsesRun:
    plan: pipeline.ChatPlan
    request: ResponsesRequest
    id: str = field(default_factory=lambda: _new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def envelope(
        self, status: str, output: list[OutputItem], usage: ResponsesUsage | None, end: ReplyEnd | None
    ) -> ResponseObject:
        req = self.request
        incomplete = end is not None and end.completion.done_reason == "length"
        return ResponseObject(
            id=self.id,
            created_at=self.created_at,
            status="incomplete" if incomplete and status == "completed" else status,
            incomplete_details=IncompleteDetails("max_output_tokens") if incomplete else None,
            instructions=req.instructions,
            max_output_tokens=req.max_output_tokens,
            model=req.model,
            output=output,
            parallel_tool_calls=req.parallel_tool_calls,
            temperature=req.temperature if req.temperature is not None else 1.0,
            top_p=req.top_p if req.top_p is not None else 1.0,
            tool_choice=req.tool_choice or "auto",
            tools=req.tools or [],
            text=req.text or {"format": {"type": "text"}},
            reasoning=req.reasoning or {},
            usage=usage,
            metadata=req.metadata or {},
        )


def response_job(req: ResponsesRequest) -> ChatJob:
    if req.previous_response_id:
        raise InvalidRequest(
            "previous_response_id is not supported: responses are not stored; send the whole input"
        )
    tool_choice, tools = tool_choice_for(req.tool_choice, _tools(req))
    if req.max_output_tokens is not None and req.max_output_tokens < 1:
        raise InvalidRequest(f"max_output_tokens must be at least 1, got {req.max_output_tokens}")
    return ChatJob(
        model=req.model,
        messages=chat_messages(_messages(req)),
        tools=tools,
        tool_choice=tool_choice,
        think=effort_to_think((req.reasoning or {}).get("effort")),
        format=_format(req),
        format_field="text.format",
        options=sampling_options(
            temperature=req.temperature, top_p=req.top_p, max_tokens=req.max_output_tokens
        ),
        debug_render_only=req.debug_render_only,
    )


def prepare_response(state: ServerState, req: ResponsesRequest) -> ResponsesRun:
    return ResponsesRun(pipeline.plan_chat(state, response_job(req)), req)


def _usage(end: ReplyEnd) -> ResponsesUsage:
    c = end.completion
    prompt = c.prompt_tokens
    return ResponsesUsage(input_tokens=prompt, input_tokens_details=InputTokensDetails(c.cached_tokens),
                          output_tokens=c.eval_count, total_tokens=prompt + c.eval_count)  # fmt: skip


def _reasoning_item(item_id: str, text: str) -> ReasoningItem:
    return ReasoningItem(id=item_id, summary=[SummaryText(text=text)])


def _message_item(item_id: str, text: str, status: str = "completed") -> MessageItem:
    return MessageItem(id=item_id, status=status, content=[OutputText(text=text)])


def _call_item(call: dict[str, Any]) -> FunctionCallItem:
    function = call["function"]
    return FunctionCallItem(id=_new_id("fc"), call_id=call["id"], name=function["name"],
                            arguments=orjson.dumps(function["arguments"]).decode())  # fmt: skip


async def response(state: ServerState, run: ResponsesRun) -> ResponseObject:
    if run.plan.job.debug_render_only:
        prompt = await pipeline.render_only(state, run.plan.job)
        debug = run.envelope("completed", [], None, None)
        debug.debug_info = DebugInfo(prompt.text)
        return debug
    whole, end, _ = await pipeline.collect_chat(state, run.plan)
    output: list[OutputItem] = []
    if whole.thinking:
        output.append(_reasoning_item(_new_id("rs"), whole.thinking))
    if whole.content or not whole.tool_calls:
        output.append(_message_item(_new_id("msg"), whole.content))
    output += [_call_item(call) for call in whole.tool_calls]
    return run.envelope("completed", output, _usage(end), end)


Named = tuple[str, ResponseEvent]


class ItemStream:
    """Reply deltas → Responses streaming events; one output item per kind of output, in order."""

    def __init__(self) -> None:
        self.seq = 0
        self.output: list[OutputItem] = []
        self.kind = ""
        self.text = ""

    def event(self, kind: str, **fields: Any) -> Named:
        self.seq += 1
        return kind, ResponseEvent(type=kind, sequence_number=self.seq, **fields)

    def _open(self, kind: str) -> list[Named]:
        events = self._close()
        self.kind, self.text = kind, ""
        index = len(self.output)
        if kind == "reasoning":
            reasoning = ReasoningItem(id=_new_id("rs"), summary=[])
            self.output.append(reasoning)
            return [
                *events,
                self.event("response.output_item.added", output_index=index, item=reasoning),
                self.event(
                    "response.reasoning_summary_part.added",
                    item_id=reasoning.id,
                    output_index=index,
                    summary_index=0,
                    part=SummaryText(text=""),
                ),
            ]
        message = MessageItem(id=_new_id("msg"), status="in_progress", content=[])
        self.output.append(message)
        return [
            *events,
            self.event("response.output_item.added", output_index=index, item=message),
            self.event(
                "response.content_part.added",
                item_id=message.id,
                output_index=index,
                content_index=0,
                part=OutputText(text=""),
            ),
        ]

    def _close(self) -> list[Named]:
        if not self.kind:
            return []
        index = len(self.output) - 1
        item = self.output[index]
        self.kind = ""
        if isinstance(item, ReasoningItem):
            item.summary = [SummaryText(text=self.text)]
            return [
                self.event(
                    "response.reasoning_summary_text.done",
                    item_id=item.id,
                    output_index=index,
                    summary_index=0,
                    text=self.text,
                ),
                self.event(
                    "response.reasoning_summary_part.done",
                    item_id=item.id,
                    output_index=index,
                    summary_index=0,
                    part=SummaryText(text=self.text),
                ),
                self.event("response.output_item.done", output_index=index, item=item),
            ]
        assert isinstance(item, MessageItem)
        part = OutputText(text=self.text)
        item.content, item.status = [part], "completed"
        return [
            self.event(
                "response.output_text.done",
                item_id=item.id,
                output_index=index,
                content_index=0,
                text=self.text,
            ),
            self.event(
                "response.content_part.done",
                item_id=item.id,
                output_index=index,
                content_index=0,
                part=part,
            ),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def feed(self, delta: ReplyDelta) -> list[Named]:
        events: list[Named] = []
        for kind, text in (("reasoning", delta.thinking), ("message", delta.content)):
            if not text:
                continue
            if self.kind != kind:
                events += self._open(kind)
            self.text += text
            item_id, index = self.output[-1].id, len(self.output) - 1
            if kind == "reasoning":
                events.append(
                    self.event(
                        "response.reasoning_summary_text.delta",
                        item_id=item_id,
                        output_index=index,
                        summary_index=0,
                        delta=text,
                    )
                )
            else:
                events.append(
                    self.event(
                        "response.output_text.delta",
                        item_id=item_id,
                        output_index=index,
                        content_index=0,
                        delta=text,
                    )
                )
        for call in delta.tool_calls:
            events += self._close()
            item = _call_item(call)
            index = len(self.output)
            self.output.append(item)
            events += [
                self.event(
                    "response.output_item.added",
                    output_index=index,
                    item=msgspec.structs.replace(item, arguments=""),
                ),
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=index,
                    delta=item.arguments,
                ),
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=index,
                    arguments=item.arguments,
                ),
                self.event("response.output_item.done", output_index=index, item=item),
            ]
        return events

    def finish(self) -> list[Named]:
        events = [] if self.output else self._open("message")
        return events + self._close()


async def response_events(state: ServerState, run: ResponsesRun) -> AsyncIterator[Named]:
    """The Responses event sequence; it opens with the first pipeline event (once the prompt is
    evaluated), so errors before that keep their HTTP status."""
    items = ItemStream()
    opened = False
    async for item in pipeline.run_chat(state, run.plan):
        if not opened:
            opened = True
            started = run.envelope("in_progress", [], None, None)
            yield items.event("response.created", response=started)
            yield items.event("response.in_progress", response=started)
        for event in items.feed(item.delta):
            yield event
        if isinstance(item, ReplyEnd):
            for event in items.finish():
                yield event
            # always `response.completed` (the SDK's stream helper waits for it); a reply cut by
            # max_output_tokens says so in the response's status and incomplete_details
            yield items.event(
                "response.completed", response=run.envelope("completed", items.output, _usage(item), item)
            )
