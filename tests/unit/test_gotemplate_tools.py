"""Tool calls in replies to Go-template prompts (a3s_power.chat.gotemplate.tools): the tag comes
from the template's `{{ if .ToolCalls }}` branch; text before it streams as content."""

from __future__ import annotations

from a3s_power.chat.gotemplate import parse_go_template
from a3s_power.chat.gotemplate.tools import GoToolParser, tool_call_tag
from a3s_power.chat.reply import ReplyDelta

QWEN_LIKE = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .Content }}{{ .Content }}{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
MISTRAL_LIKE = (
    "{{- range .Messages }}{{ if .ToolCalls }}[TOOL_CALLS] [{{ range .ToolCalls }}{{ json .Function }}"
    "{{ end }}]{{ else }}{{ .Content }}{{ end }}{{ end }}"
)
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def _run(parser: GoToolParser, pieces: list[str]) -> ReplyDelta:
    whole = ReplyDelta()
    for piece in pieces:
        whole.add(parser.feed(piece))
    whole.add(parser.finish())
    return whole


def test_tags_come_from_the_template() -> None:
    assert tool_call_tag(parse_go_template(QWEN_LIKE)) == "<tool_call>"
    assert tool_call_tag(parse_go_template(MISTRAL_LIKE)) == "[TOOL_CALLS] ["
    assert tool_call_tag(parse_go_template("{{ range .Messages }}{{ .Content }}{{ end }}")) == "{"


def test_calls_after_the_tag_are_parsed_whole_and_text_before_streams() -> None:
    parser = GoToolParser("<tool_call>", TOOLS)
    first = parser.feed("Let me check. <tool")
    assert first.content == "Let me check. " and not first.tool_calls  # a half tag is held back
    whole = _run(
        parser, ['_call>\n{"name": "get_weather", ', '"arguments": {"city": "Paris"}}\n</tool_call>']
    )
    assert whole.content == ""
    assert [c["function"] for c in whole.tool_calls] == [
        {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert whole.tool_calls[0]["id"].startswith("call_")


def test_unknown_tools_and_plain_text_stay_content() -> None:
    plain = _run(GoToolParser("<tool_call>", TOOLS), ["It is ", "sunny."])
    assert plain.content == "It is sunny." and not plain.tool_calls
    unknown = _run(GoToolParser("<tool_call>", TOOLS), ['<tool_call>{"name": "nope", "arguments": {}}'])
    assert not unknown.tool_calls and unknown.content == '<tool_call>{"name": "nope", "arguments": {}}'
    json_first = _run(GoToolParser("{", TOOLS), ['{"name": "get_weather", "parameters": {"q": 1}}'])
    assert json_first.tool_calls[0]["function"]["arguments"] == {"q": 1}
    text_first = _run(GoToolParser("{", TOOLS), ['Here: {"name": "get_weather", "arguments": {}}'])
    assert (
        text_first.content == 'Here: {"name": "get_weather", "arguments": {}}' and not text_first.tool_calls
    )
