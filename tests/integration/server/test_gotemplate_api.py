"""Go TEMPLATE layers and the request `template` / `raw` on a live server with SmolLM2.

The prompt a request costs (`prompt_eval_count`: every prompt token) is compared with the
tokens of the prompt the Go template must render, worked out by hand; the template is chosen so
that the GGUF's own (ChatML) template would cost a different count.
"""

from __future__ import annotations

import httpx
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
