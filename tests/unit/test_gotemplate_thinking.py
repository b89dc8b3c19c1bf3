"""Thinking with Go TEMPLATE layers (a3s_power.chat.gotemplate.thinking): the tags come from the
text around `.Thinking` inside `range .Messages` (Ollama's thinking.InferTags), and the reply
parser splits thinking from content as Ollama's thinking.Parser does."""

from __future__ import annotations

import pytest

from a3s_power.chat.gotemplate import infer_thinking_tags, parse_go_template, render_go_template
from a3s_power.chat.gotemplate.thinking import ThinkingParser
from a3s_power.chat.gotemplate.tools import GoToolParser, tool_call_tag
from a3s_power.chat.reply import ReplyDelta

# The shape of Ollama's qwen3 template: thinking of earlier turns, .Think / .IsThinkSet deciding the
# generation prompt, and the tool-call branch.
QWEN3_LIKE = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Thinking }}<think>{{ .Thinking }}</think>
{{ end }}{{ if .Content }}{{ .Content }}{{ else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>{{ end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ if and $.IsThinkSet (not $.Think) }}<think>

</think>

{{ else if $.Think }}<think>
{{ end }}
{{- end }}
{{- end }}"""
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("template", "tags"),
    [
        (QWEN3_LIKE, ("<think>", "</think>")),
        # the nearest list around the print, trimmed (Ollama's TrimSpace)
        (
            "{{ range .Messages }}{{ if .Thinking }} <|think|>\n{{ .Thinking }}\n<|/think|> {{ end }}"
            "{{ end }}",
            ("<|think|>", "<|/think|>"),
        ),
        # only tested, never printed: no tags
        ("{{ range .Messages }}{{ if .Thinking }}<think></think>{{ end }}{{ .Content }}{{ end }}", ("", "")),
        # printed outside a range over .Messages: no tags
        ("{{ with .Messages }}<think>{{ .Thinking }}</think>{{ end }}", ("", "")),
        # .Think alone (no .Thinking printed) is not Ollama's rule for the capability
        ("{{ if .Think }}<think>{{ end }}{{ range .Messages }}{{ .Content }}{{ end }}", ("", "")),
        # the closing side is an action: only the opening tag, so no capability
        ("{{ range .Messages }}<think>{{ .Thinking }}{{ .Content }}{{ end }}", ("<think>", "")),
    ],
)
def test_tags_are_inferred_as_ollama_does(template: str, tags: tuple[str, str]) -> None:
    assert infer_thinking_tags(parse_go_template(template)) == tags


def test_think_flags_and_message_thinking_render() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "thinking": "greet back"},
        {"role": "user", "content": "Weather?"},
    ]
    on = render_go_template(QWEN3_LIKE, None, messages, think=True)
    assert "<think>greet back</think>\nHello" in on
    assert on.endswith("<|im_start|>assistant\n<think>\n")
    off = render_go_template(QWEN3_LIKE, None, messages, think=False)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    unset = render_go_template(QWEN3_LIKE, None, messages, think=None)
    assert unset.endswith("<|im_start|>assistant\n")
    level = render_go_template("{{ .ThinkLevel }}|{{ .IsThinkSet }}|{{ .Think }}", None, [], think="high")
    assert level == "high|true|true"


def _run(parser: ThinkingParser, pieces: list[str]) -> tuple[list[ReplyDelta], ReplyDelta]:
    deltas = [parser.feed(piece) for piece in pieces]
    whole = ReplyDelta()
    for delta in deltas:
        whole.add(delta)
    whole.add(parser.finish())
    return deltas, whole


def test_thinking_then_content_streams_with_half_tags_held_back() -> None:
    pieces = ["  <th", "ink>\n", "Let me", " see.</thi", "nk>\n\n", "Sunny."]
    deltas, whole = _run(ThinkingParser("<think>", "</think>"), pieces)
    assert [(d.thinking, d.content) for d in deltas] == [
        ("", ""), ("", ""), ("Let me", ""), (" see.", ""), ("", ""), ("", "Sunny."),
    ]  # fmt: skip
    assert (whole.thinking, whole.content) == ("Let me see.", "Sunny.")


def test_a_reply_without_the_opening_tag_is_all_content() -> None:
    _, whole = _run(ThinkingParser("<think>", "</think>"), ["  Hello", " <think>x</think>"])
    assert whole.thinking == "" and whole.content == "  Hello <think>x</think>"


def test_an_opened_block_from_the_prompt_and_a_cut_reply() -> None:
    parser = ThinkingParser("<think>", "</think>")
    parser.feed("<think>")  # the generation prompt ended with the opening tag
    _, whole = _run(parser, ["Still thinking </th"])
    assert whole.thinking == "Still thinking </th" and whole.content == ""


def test_content_after_thinking_goes_to_the_tool_parser() -> None:
    calls = GoToolParser(tool_call_tag(parse_go_template(QWEN3_LIKE)), TOOLS)
    _, whole = _run(
        ThinkingParser("<think>", "</think>", calls),
        [
            "<think>Need weather.</think>\n",
            '<tool_call>\n{"name": "get_weather", ',
            '"arguments": {"city": "Paris"}}\n</tool_call>',
        ],
    )
    assert whole.thinking == "Need weather."
    assert whole.content == ""
    assert [c["function"]["name"] for c in whole.tool_calls] == ["get_weather"]
    assert whole.tool_calls[0]["function"]["arguments"] == {"city": "Paris"}
