"""Go TEMPLATE layers and the request `template` / `raw` on a live server with SmolLM2.

The prompt a request costs (`prompt_eval_count`: every prompt token) is compared with the
tokens of the prompt the Go template must render, worked out by hand; the template is chosen so
that the GGUF's own (ChatML) template would cost a different count.
"""

from __future__ import annotations

import httpx
import orjson
import pytest
from live_server import LiveServer

from a3s_power.runtime import LoadedModel

pytestmark = pytest.mark.timeout(180)
BASE = "smollm2:135m"
ONE = {"temperature": 0, "num_predict": 1}
BRACKETS = "{{- range .Messages }}[{{ .Role }}] {{ .Content }}\n{{ end }}[assistant] "


def _count(loaded: LoadedModel, text: str) -> int:
    return len(loaded.tokenize(text, add_special=True, parse_special=True))


def _create(server: LiveServer, body: dict[str, object]) -> httpx.Response:
    return httpx.post(server.url + "/api/create", json={"stream": False, **body}, timeout=60)


def test_chat_renders_the_go_template_layer_with_system_and_messages(
    server: LiveServer, smollm2: LoadedModel
) -> None:
    created = _create(
        server,
        {"model": "smol-go", "from": BASE, "template": BRACKETS, "system": "You are Smol.",
         "messages": [{"role": "user", "content": "Hey"}, {"role": "assistant", "content": "Hello!"}]},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    reply = httpx.post(
        server.url + "/api/chat",
        json={"model": "smol-go", "stream": False, "options": ONE,
              "messages": [{"role": "user", "content": "Name a colour."}]},
        timeout=120,
    ).json()  # fmt: skip
    expected = "[system] You are Smol.\n[user] Hey\n[assistant] Hello!\n[user] Name a colour.\n[assistant] "
    assert reply["prompt_eval_count"] == _count(smollm2, expected)
    chatml = smollm2.render_chat(
        [{"role": "system", "content": "You are Smol."}, {"role": "user", "content": "Hey"},
         {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour."}]
    ).prompt  # fmt: skip
    assert _count(smollm2, chatml) != reply["prompt_eval_count"]  # the template did change the prompt


def test_generate_with_a_request_template_and_system(server: LiveServer, smollm2: LoadedModel) -> None:
    body = {"model": BASE, "prompt": "Say hi", "system": "Be terse", "stream": False, "options": ONE}
    legacy = httpx.post(
        server.url + "/api/generate",
        json={**body, "template": "<<{{ .System }}>> {{ .Prompt }} =>"},
        timeout=120,
    ).json()
    assert legacy["prompt_eval_count"] == _count(smollm2, "<<Be terse>> Say hi =>")
    messages = httpx.post(
        server.url + "/api/generate", json={**body, "template": BRACKETS}, timeout=120
    ).json()
    assert messages["prompt_eval_count"] == _count(smollm2, "[system] Be terse\n[user] Say hi\n[assistant] ")


def test_generate_raw_sends_the_prompt_verbatim_with_special_tokens(
    server: LiveServer, smollm2: LoadedModel
) -> None:
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    reply = httpx.post(
        server.url + "/api/generate",
        json={"model": BASE, "prompt": prompt, "raw": True, "stream": False, "options": ONE},
        timeout=120,
    ).json()
    assert reply["prompt_eval_count"] == _count(smollm2, prompt)
    assert reply["prompt_eval_count"] < len(smollm2.tokenize(prompt, add_special=True, parse_special=False))
    refused = httpx.post(
        server.url + "/api/generate",
        json={"model": BASE, "prompt": "x", "raw": True, "template": "{{ .Prompt }}"},
    )
    assert refused.status_code == 400
    assert refused.json() == {"error": "raw mode does not support template, system, or context"}


def test_bad_templates_are_refused_with_the_line(server: LiveServer) -> None:
    created = _create(server, {"model": "smol-bad", "from": BASE, "template": "ok\n{{ if .System }}"})
    assert created.status_code == 400
    assert created.json() == {"error": "template error: template: :2: unexpected EOF"}
    assert httpx.post(server.url + "/api/show", json={"model": "smol-bad"}).status_code == 404
    request = httpx.post(
        server.url + "/api/generate",
        json={"model": BASE, "prompt": "x", "template": "{{ .Prompt ", "stream": False},
        timeout=60,
    )
    assert request.status_code == 500
    assert request.json() == {"error": "template: :1: unclosed action"}


TOOLS_TEMPLATE = """{{- if .Tools }}<|im_start|>system
Tools: {{ json .Tools }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>{{ else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def test_go_tools_template_renders_tools_and_a_tool_round_trip(server: LiveServer) -> None:
    created = _create(server, {"model": "smol-go-tools", "from": BASE, "template": TOOLS_TEMPLATE})
    assert created.status_code == 200, created.text
    shown = httpx.post(server.url + "/api/show", json={"model": "smol-go-tools"}).json()
    assert "tools" in shown["capabilities"]
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]  # fmt: skip
    body = {"model": "smol-go-tools", "messages": messages, "tools": [tool], "stream": False}
    debug = httpx.post(
        server.url + "/api/chat", json={**body, "_debug_render_only": True}, timeout=120
    ).json()
    assert debug["_debug_info"]["rendered_template"] == (
        '<|im_start|>system\nTools: [{"type":"function","function":{"name":"get_weather","description":'
        '"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]<|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n'
        "</tool_call><|im_end|>\n<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>assistant\n"
    )


def test_go_template_replies_are_parsed_into_tool_calls(server: LiveServer) -> None:
    """A template whose `{{ if .ToolCalls }}` writes bare JSON: a reply that is a JSON call (here
    forced by a `format` schema) comes back as `tool_calls`, not as content."""
    template = TOOLS_TEMPLATE.replace("<tool_call>\n", "").replace("</tool_call>", "")
    assert _create(server, {"model": "smol-go-json", "from": BASE, "template": template}).status_code == 200
    schema = {
        "type": "object",
        "properties": {
            "name": {"const": "get_weather"},
            "arguments": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}},
                          "required": ["city"], "additionalProperties": False},
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }  # fmt: skip
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    reply = httpx.post(
        server.url + "/api/chat",
        json={"model": "smol-go-json", "stream": False, "tools": [tool], "format": schema,
              "options": {"temperature": 0, "num_predict": 60},
              "messages": [{"role": "user", "content": "What is the weather in Paris?"}]},
        timeout=120,
    ).json()  # fmt: skip
    assert reply["done_reason"] == "stop", reply
    assert reply["message"]["content"] == ""
    (call,) = reply["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and call["function"]["index"] == 0
    assert isinstance(call["function"]["arguments"]["city"], str)


def test_a_required_tool_call_holds_on_a_go_template(server: LiveServer) -> None:
    """tool_choice required on a Go tools template: the reply is the template's own call format
    (`<tool_call>` + JSON) from its first token, parsed into a call."""
    if httpx.post(server.url + "/api/show", json={"model": "smol-go-tools"}).status_code != 200:
        assert (
            _create(server, {"model": "smol-go-tools", "from": BASE, "template": TOOLS_TEMPLATE}).status_code
            == 200
        )
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"]}}}  # fmt: skip
    reply = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "smol-go-tools", "tools": [tool], "tool_choice": "required", "max_tokens": 60,
              "temperature": 0, "messages": [{"role": "user", "content": "Hello!"}]},
        timeout=120,
    ).json()  # fmt: skip
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls", reply
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert set(orjson.loads(call["function"]["arguments"])) == {"city"}


# Ollama's qwen3 shape: earlier thinking between <think> tags, .Think / .IsThinkSet deciding how the
# generation prompt opens.
THINKING = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ if and (eq .Role "assistant") .Thinking }}<think>{{ .Thinking }}</think>
{{ end }}{{ .Content }}<|im_end|>
{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ if and $.IsThinkSet (not $.Think) }}<think>

</think>

{{ else }}<think>
{{ end }}{{ end }}
{{- end }}"""


def test_a_go_template_with_thinking_thinks(server: LiveServer) -> None:
    """The `thinking` capability comes from the tags around `.Thinking` (Ollama's InferTags); thinking
    is on unless the request turns it off; the reply inside the opened block is `thinking`."""
    assert _create(server, {"model": "smol-think", "from": BASE, "template": THINKING}).status_code == 200
    assert _create(server, {"model": "smol-nothink", "from": BASE, "template": BRACKETS}).status_code == 200
    shown = httpx.post(server.url + "/api/show", json={"model": "smol-think"}, timeout=30).json()
    assert "thinking" in shown["capabilities"]
    plain = httpx.post(server.url + "/api/show", json={"model": "smol-nothink"}, timeout=30).json()
    assert "thinking" not in plain["capabilities"]
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "thinking": "They greet me."},
        {"role": "user", "content": "Name a colour."},
    ]
    body = {"model": "smol-think", "stream": False, "messages": messages,
            "options": {"temperature": 0, "num_predict": 6}}  # fmt: skip

    def chat(**extra: object) -> dict[str, object]:
        reply = httpx.post(server.url + "/api/chat", json={**body, **extra}, timeout=120)
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    rendered = str(chat(_debug_render_only=True)["_debug_info"]["rendered_template"])  # type: ignore[index]
    assert "<think>They greet me.</think>\nHello!" in rendered  # a message's .Thinking
    assert rendered.endswith("<|im_start|>assistant\n<think>\n")  # think unset: on, as Ollama
    for extra in ({}, {"think": True}):
        message = chat(**extra)["message"]
        assert isinstance(message, dict) and message["thinking"] and "<think>" not in message["thinking"]
    off = str(chat(think=False, _debug_render_only=True)["_debug_info"]["rendered_template"])  # type: ignore[index]
    assert off.endswith("<think>\n\n</think>\n\n")
    message = chat(think=False)["message"]
    assert isinstance(message, dict) and "thinking" not in message and message["content"]
    openai = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "smol-think", "messages": messages, "max_tokens": 6, "temperature": 0},
        timeout=120,
    ).json()
    assert openai["choices"][0]["message"]["reasoning"]
    refused = httpx.post(
        server.url + "/api/chat", json={**body, "model": "smol-nothink", "think": True}, timeout=60
    )
    assert refused.status_code == 400 and "does not support thinking" in refused.text


THINKING_TOOLS = """{{- if .Tools }}<|im_start|>system
Tools: {{ range .Tools }}{{ .Function.Name }} {{ end }}<|im_end|>
{{ end }}""" + THINKING.replace(
    "{{ .Content }}<|im_end|>",
    """{{ if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>{{ else }}{{ .Content }}{{ end }}<|im_end|>""",
)


def test_a_forced_call_holds_on_a_thinking_go_template(server: LiveServer) -> None:
    """The call is forced from the first token, so the prompt closes the thinking block (think off)
    and the reply is the call, not thinking."""
    created = _create(server, {"model": "smol-think-tools", "from": BASE, "template": THINKING_TOOLS})
    assert created.status_code == 200, created.text
    shown = httpx.post(server.url + "/api/show", json={"model": "smol-think-tools"}, timeout=30).json()
    assert {"tools", "thinking"} <= set(shown["capabilities"])
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip
    body = {"model": "smol-think-tools", "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [tool], "tool_choice": "required", "max_tokens": 40, "temperature": 0}  # fmt: skip
    reply = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=120).json()
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls", reply
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == ["get_weather"]
    assert "city" in orjson.loads(choice["message"]["tool_calls"][0]["function"]["arguments"])
    assert not choice["message"].get("reasoning")
