"""The translators share one constructor per family for the request fields their endpoints have
in common: /api/generate and /api/chat (`ollama_job`), /v1/chat/completions and /v1/completions
(`openai_job`)."""

from __future__ import annotations

import msgspec

from a3s_power.api.ollama.generation import chat_job, generate_job
from a3s_power.api.ollama.protocol import ChatRequest, GenerateRequest
from a3s_power.api.openai.protocol import ChatCompletionRequest, CompletionRequest
from a3s_power.api.openai.service import chat_job as openai_chat_job
from a3s_power.api.openai.service import completion_job

SHARED = {
    "model": "m",
    "format": "json",
    "keep_alive": "1m",
    "options": {"num_ctx": 512, "temperature": 0.2},
    "think": "low",
    "truncate": False,
    "shift": False,
    "logprobs": True,
    "top_logprobs": 3,
    "_debug_render_only": True,
}
FIELDS = ("model", "format", "keep_alive", "options", "think", "truncate", "shift", "logprobs",
          "top_logprobs", "debug_render_only")  # fmt: skip


def _job_fields(job: object) -> dict[str, object]:
    return {name: getattr(job, name) for name in FIELDS}


def test_generate_and_chat_map_their_shared_fields_alike() -> None:
    generate = generate_job(msgspec.convert({**SHARED, "prompt": "Hi", "system": "S"}, GenerateRequest))
    chat = chat_job(msgspec.convert({**SHARED, "messages": [{"role": "user", "content": "Hi"}]}, ChatRequest))
    assert _job_fields(generate) == _job_fields(chat)
    assert _job_fields(chat) == {
        "model": "m", "format": "json", "keep_alive": 60.0, "options": {"num_ctx": 512, "temperature": 0.2},
        "think": "low", "truncate": False, "shift": False, "logprobs": True, "top_logprobs": 3,
        "debug_render_only": True,
    }  # fmt: skip
    assert generate.prompt_mode and generate.what == "generate" and not chat.prompt_mode
    assert [m.role for m in generate.messages] == ["system", "user"]


def test_openai_chat_and_completions_map_their_shared_fields_alike() -> None:
    shared = {"model": "m", "max_tokens": 7, "temperature": 0.5, "seed": 3, "stop": "x"}
    shared["_debug_render_only"] = True
    chat = openai_chat_job(
        msgspec.convert({**shared, "messages": [{"role": "user", "content": "Hi"}]}, ChatCompletionRequest)
    )
    completion = completion_job(msgspec.convert({**shared, "prompt": "Hi"}, CompletionRequest))
    assert chat.options == completion.options == {
        "temperature": 0.5, "top_p": 1.0, "num_predict": 7, "seed": 3, "stop": ["x"],
    }  # fmt: skip
    assert chat.debug_render_only and completion.debug_render_only and completion.prompt_mode
