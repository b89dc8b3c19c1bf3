"""Response bodies and stream chunks are msgspec structs in each family's protocol.py; encoded, they
are byte for byte the JSON objects the services used to build as dicts (same keys, same order,
null where null was sent, absent where the key was left out)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from a3s_power.api.anthropic.protocol import (
    ContentBlockStart,
    Message,
    MessageDelta,
    MessageStart,
    StartUsage,
    StopDelta,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from a3s_power.api.ollama.protocol import ChatResponse, ChatResponseMessage, DebugInfo, EmbedResponse
from a3s_power.api.openai.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatMessageOut,
    CompletionChoice,
    FunctionCall,
    FunctionCallItem,
    PromptTokensDetails,
    ResponseEvent,
    TextCompletion,
    ToolCallOut,
)
from a3s_power.api.openai.protocol import Usage as OpenAIUsage


def _same(struct: Any, literal: dict[str, Any]) -> None:
    assert msgspec.json.encode(struct) == msgspec.json.encode(literal)


def test_openai_chat_bodies_and_chunks() -> None:
    head = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "m",
        "system_fingerprint": "fp_ollama",
    }

    def chunk(choices: list[ChatChoice], usage: OpenAIUsage | Any = UNSET) -> ChatCompletion:
        return ChatCompletion(
            id="chatcmpl-1",
            object="chat.completion.chunk",
            created=7,
            model="m",
            system_fingerprint="fp_ollama",
            choices=choices,
            usage=usage,
        )

    first = chunk([ChatChoice(delta=ChatMessageOut(role="assistant", content="", reasoning="hm"))])
    _same(
        first,
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "", "reasoning": "hm"},
                    "finish_reason": None,
                }
            ],
        },
    )
    call = ToolCallOut(id="call_1", index=0, function=FunctionCall("f", '{"a":1}'))
    calls = chunk([ChatChoice(delta=ChatMessageOut(tool_calls=[call]))])
    _same(
        calls,
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "index": 0,
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"a":1}'},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        },
    )
    _same(
        chunk([ChatChoice(delta=ChatMessageOut(), finish_reason="stop")]),
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    )
    usage = OpenAIUsage(3, 2, 5, PromptTokensDetails(1))
    _same(
        chunk([], usage),
        {
            **head,
            "choices": [],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 2,
                "total_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 1},
            },
        },
    )
    debug = ChatCompletion(
        id="x", object="chat.completion", created=7, model="m", choices=[], debug_info=DebugInfo("prompt")
    )
    _same(
        debug,
        {
            "id": "x",
            "object": "chat.completion",
            "created": 7,
            "model": "m",
            "choices": [],
            "_debug_info": {"rendered_template": "prompt", "image_count": 0},
        },
    )
    text = TextCompletion(
        id="cmpl-1",
        created=7,
        model="m",
        system_fingerprint="fp_ollama",
        choices=[CompletionChoice(text="hi")],
    )
    _same(
        text,
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 7,
            "model": "m",
            "system_fingerprint": "fp_ollama",
            "choices": [{"text": "hi", "index": 0, "logprobs": None, "finish_reason": None}],
        },
    )


def test_responses_items_and_events() -> None:
    item = FunctionCallItem(id="fc_1", call_id="call_1", name="f", arguments="{}")
    literal = {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "f",
        "arguments": "{}",
        "status": "completed",
    }
    _same(item, literal)
    event = ResponseEvent(type="response.output_item.added", sequence_number=3, output_index=1, item=item)
    _same(
        event,
        {"type": "response.output_item.added", "sequence_number": 3, "output_index": 1, "item": literal},
    )
    delta = ResponseEvent(
        type="response.output_text.delta",
        sequence_number=4,
        item_id="msg_1",
        output_index=0,
        content_index=0,
        delta="Hi",
    )
    _same(
        delta,
        {
            "type": "response.output_text.delta",
            "sequence_number": 4,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "Hi",
        },
    )


def test_anthropic_message_and_events() -> None:
    start = MessageStart(Message(id="msg_1", model="m", content=[], usage=StartUsage()))
    _same(
        start,
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
    )
    _same(
        ContentBlockStart(2, ToolUseBlock("toolu_1", "f", {})),
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        },
    )
    usage = Usage(input_tokens=4, output_tokens=2, cache_read_input_tokens=1)
    usage_literal = {
        "input_tokens": 4,
        "output_tokens": 2,
        "cache_read_input_tokens": 1,
        "cache_creation_input_tokens": 0,
    }
    _same(
        MessageDelta(StopDelta("end_turn"), usage),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": usage_literal,
        },
    )
    whole = Message(
        id="msg_1",
        model="m",
        content=[ThinkingBlock("t"), TextBlock("a")],
        stop_reason="end_turn",
        usage=usage,
    )
    _same(
        whole,
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": ""},
                {"type": "text", "text": "a"},
            ],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage_literal,
        },
    )


def test_ollama_final_chunk_and_embed() -> None:
    final = ChatResponse(
        model="m",
        created_at="t",
        message=ChatResponseMessage("assistant", ""),
        done=True,
        done_reason="stop",
        total_duration=9,
        load_duration=1,
        eval_count=2,
    )
    _same(
        final,
        {
            "model": "m",
            "created_at": "t",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "total_duration": 9,
            "load_duration": 1,
            "eval_count": 2,
        },
    )
    chunk = ChatResponse(model="m", created_at="t", message=ChatResponseMessage("assistant", "a"), done=False)
    _same(
        chunk,
        {"model": "m", "created_at": "t", "message": {"role": "assistant", "content": "a"}, "done": False},
    )
    _same(EmbedResponse(model="m", embeddings=[]), {"model": "m", "embeddings": []})
    _same(
        EmbedResponse(model="m", embeddings=[[0.5]], total_duration=3, prompt_eval_count=1),
        {"model": "m", "embeddings": [[0.5]], "total_duration": 3, "prompt_eval_count": 1},
    )
