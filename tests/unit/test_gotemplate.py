# ruff: noqa: E501  (templates and rendered prompts are kept whole, one per line, to be read)
"""The Go TEMPLATE renderer (a3s_power.chat.gotemplate).

Templates are Ollama's library templates (`template/*.gotmpl` at ollama fb30760) and the ones its
docs (`docs/template.mdx`) show; every expected string is worked out by hand from Go's
text/template rules (trim markers eat spaces and newlines up to the next non-space, `range`
rebinds dot, `$` is the root) and Ollama's data rules (system messages collated into `.System`,
the legacy path cut after `{{ .Response }}`).
"""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _store_helpers import write_tiny_gguf
from a3s_power.chat.gotemplate import (
    GoTemplateError,
    GoTemplateExecError,
    is_go_template,
    parse_go_template,
    render_go_template,
)
from a3s_power.chat.gotemplate.values import go_json, go_print
from a3s_power.store.create import CreateRequest, create_events
from a3s_power.store.errors import CreateError
from a3s_power.store.store import ModelStore

CHATML = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

LLAMA3 = """{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""

# docs/template.mdx: the Llama 3 TEMPLATE that puts .System first
LLAMA3_DOCS = """{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""

GEMMA3 = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{- if and (eq $i 1) $.System }}
{{ $.System }}
{{ end }}
{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- if $last }}<start_of_turn>model
{{ end }}
{{- end }}"""

GEMMA = """{{- $system := "" }}
{{- range .Messages }}
{{- if eq .Role "system" }}
{{- if not $system }}{{ $system = .Content }}
{{- else }}{{ $system = printf "%s\\n\\n%s" $system .Content }}
{{- end }}
{{- continue }}
{{- else if eq .Role "user" }}<start_of_turn>user
{{- if $system }}
{{ $system }}
{{- $system = "" }}
{{- end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{- end }}
{{ .Content }}<end_of_turn>
{{ end }}<start_of_turn>model
"""

# docs/template.mdx: Mistral v0.3 with tools
MISTRAL_TOOLS = """{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (le (len (slice $.Messages $index)) 2) $.Tools }}[AVAILABLE_TOOLS] {{ json $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and (eq (len (slice $.Messages $index)) 1) $.System }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}</s>
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}
{{- end }}]</s>
{{- end }}
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}}[/TOOL_RESULTS]
{{- end }}
{{- end }}"""

# a legacy (pre-.Messages) ChatML template: executed once per turn
CHATML_LEGACY = """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ .Response }}<|im_end|>
"""

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
HELLO = {"role": "user", "content": "Hello, how are you?"}
GREAT = {"role": "assistant", "content": "I'm doing great. How can I help you today?"}
SHOW = {"role": "user", "content": "I'd like to show off how chat templating works!"}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather <now> & later",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "additionalProperties": False,  # not a field of Ollama's struct: dropped from its JSON
            "properties": {
                "unit": {"type": "string", "enum": ["c", "f"]},
                "city": {"type": "string", "description": "City name"},
            },
        },
    },
}


def test_chatml_user_and_full_conversation() -> None:
    assert render_go_template(CHATML, None, [HELLO]) == (
        "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_go_template(CHATML, None, [SYSTEM, HELLO, GREAT, SHOW]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello, how are you?<|im_end|>\n"
        "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
        "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_system_argument_goes_first_as_a_system_message() -> None:
    assert render_go_template(CHATML, "Be brief.", [HELLO]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llama3_library_and_docs_templates() -> None:
    # `{{- end }}` trims the newline after <|eot_id|>; the text after `{{ end }}` keeps its two.
    assert render_go_template(LLAMA3, None, [HELLO, GREAT, SHOW]) == (
        "<|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nI'm doing great. How can I help you today?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nI'd like to show off how chat templating works!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    # the docs' version writes .System first and then every message, system included
    assert render_go_template(LLAMA3_DOCS, None, [SYSTEM, HELLO]) == (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_gemma3_folds_the_system_prompt_into_the_first_user_turn() -> None:
    assert render_go_template(GEMMA3, None, [HELLO]) == (
        "<start_of_turn>user\nHello, how are you?<end_of_turn>\n<start_of_turn>model\n"
    )
    # the system message is message 0 (no branch writes it); user at $i == 1 carries .System
    assert render_go_template(GEMMA3, None, [SYSTEM, HELLO, GREAT, SHOW]) == (
        "<start_of_turn>user\nYou are a helpful assistant.\n\nHello, how are you?<end_of_turn>\n"
        "<start_of_turn>model\nI'm doing great. How can I help you today?<end_of_turn>\n"
        "<start_of_turn>user\nI'd like to show off how chat templating works!<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_variables_assignment_printf_and_continue() -> None:
    two_systems = [SYSTEM, {"role": "system", "content": "Be brief."}, HELLO]
    # collate merges the consecutive system messages into one ("\n\n"), as Ollama does
    assert render_go_template(GEMMA, None, two_systems) == (
        "<start_of_turn>user\nYou are a helpful assistant.\n\nBe brief.\n"
        "Hello, how are you?<end_of_turn>\n<start_of_turn>model\n"
    )
    split = [SYSTEM, HELLO, GREAT, {"role": "system", "content": "Now in French."}, SHOW]
    assert render_go_template(GEMMA, None, split) == (
        "<start_of_turn>user\nYou are a helpful assistant.\nHello, how are you?<end_of_turn>\n"
        "<start_of_turn>model\nI'm doing great. How can I help you today?<end_of_turn>\n"
        "<start_of_turn>user\nNow in French.\nI'd like to show off how chat templating works!<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_mistral_tools_tool_calls_and_results() -> None:
    call = {"function": {"name": "get_weather", "arguments": {"unit": "c", "city": "Paris", "days": 3}}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": '"sunny"', "tool_name": "get_weather"},
        {"role": "user", "content": "Thanks"},
    ]
    tools_json = (
        '[{"type":"function","function":{"name":"get_weather","description":"Weather \\u003cnow\\u003e'
        ' \\u0026 later","parameters":{"type":"object","required":["city"],"properties":{"city":'
        '{"type":"string","description":"City name"},"unit":{"type":"string","enum":["c","f"]}}}}}]'
    )
    assert render_go_template(MISTRAL_TOOLS, None, messages, [WEATHER_TOOL]) == (
        "[INST] Weather in Paris?[/INST]"
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris","days":3,"unit":"c"}}]</s>'
        '[TOOL_RESULTS] {"content": "sunny"}[/TOOL_RESULTS]'
        f"[AVAILABLE_TOOLS] {tools_json}[/AVAILABLE_TOOLS][INST] Be brief.\n\nThanks[/INST]"
    )


def test_openai_shaped_messages_are_read_too() -> None:
    """The Jinja path's message shape (arguments as a JSON string, `name`, `reasoning_content`)."""
    template = (
        "{{ range .Messages }}{{ .Role }}:{{ .Thinking }}|{{ .ToolName }}|"
        "{{ range .ToolCalls }}{{ .ID }} {{ .Function.Name }} {{ .Function.Arguments }}{{ end }};{{ end }}"
    )
    messages = [
        {"role": "assistant", "content": None, "reasoning_content": "hmm", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"b": 1.5, "a": [1]}'}}
        ]},
        {"role": "tool", "content": "ok", "name": "f", "tool_call_id": "call_1"},
    ]  # fmt: skip
    assert (
        render_go_template(template, None, messages) == 'assistant:hmm||call_1 f {"a":[1],"b":1.5};tool:|f|;'
    )


def test_legacy_template_runs_per_turn_and_stops_where_the_reply_starts() -> None:
    assert render_go_template(CHATML_LEGACY, None, [SYSTEM, HELLO, GREAT, SHOW]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello, how are you?<|im_end|>\n"
        "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
        "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # `{{ .Prompt }}` alone gets `{{ .Response }}` appended, so earlier replies stay in the prompt
    assert render_go_template("{{ .Prompt }}", None, [HELLO, GREAT, SHOW]) == (
        "Hello, how are you?I'm doing great. How can I help you today?"
        "I'd like to show off how chat templating works!"
    )
    # a legacy template sees no tools and no messages; a messages template has no .Prompt
    assert render_go_template("{{ .System }}/{{ .Tools }}", "S", [HELLO], [WEATHER_TOOL]) == "S/<no value>"
    assert render_go_template("{{ .Messages | len }}{{ .Prompt }}", None, [HELLO]) == "1<no value>"


def test_suffix_runs_prompt_and_suffix() -> None:
    template = (
        "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{- else }}{{ .Prompt }}{{- end }}"
    )
    assert render_go_template(template, None, [], prompt="def add(", suffix="return x") == (
        "<PRE> def add( <SUF>return x <MID>"
    )
    assert render_go_template(template, None, [{"role": "user", "content": "hello"}]) == "hello"


def test_think_values() -> None:
    template = "{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}{{ .Messages | len }}"
    assert render_go_template(template, None, [], think=None) == "false  false0"
    assert render_go_template(template, None, [], think=True) == "true medium true0"
    assert render_go_template(template, None, [], think=False) == "false  true0"
    assert render_go_template(template, None, [], think="high") == "true high true0"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a  \n {{- 1 -}} \n\t b", "a1b"),
        ("{{- /* a comment */ -}}  x", "x"),
        ("{{/* c */}}y", "y"),
        ("{{-3}}", "-3"),
        ("{{ if 0 }}t{{ else if \"\" }}s{{ else if .Tools }}m{{ else }}e{{ end }}", "e"),
        ("{{ with .System }}[{{ . }}]{{ else with .Messages }}[{{ len . }}]{{ end }}", "[2]"),
        ("{{ with $x := (index .Messages 0).Content }}{{ $x }}{{ $x = \"y\" }}{{ $x }}{{ end }}", "ay"),
        ("{{ $n := 0 }}{{ range .Messages }}{{ $n = len $.Messages }}{{ end }}{{ $n }}", "2"),
        ("{{ range $i, $m := .Messages }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $m.Role }}{{ end }}", "user"),
        ("{{ range .Messages }}{{ if eq .Role \"user\" }}{{ continue }}{{ end }}{{ .Role }}{{ end }}", "assistant"),
        ("{{ range .Tools }}x{{ else }}no tools{{ end }}", "no tools"),
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        ("{{ (index .Messages 1).Content }} {{ index (index .Messages 0).ToolCalls | len }}", "b 0"),
        ("{{ slice \"héllo\" 0 3 }}|{{ len \"hé\" }}", "hé|3"),
        ("{{ eq (index .Messages 1).Role \"a\" \"assistant\" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ ge \"b\" \"a\" }}", "true true true true"),
        ("{{ and 1 \"\" 2 }}|{{ or 0 \"\" \"z\" }}|{{ not .Tools }}|{{ and .System 7 }}", "|z|true|"),
        ("{{ printf \"%s=%d %q %v %5.2f|%-3s|%%\" \"a\" 42 \"q\" true 3.14159 \"b\" }}", 'a=42 "q" true  3.14|b  |%'),
        ("{{ print 1 2 \"a\" \"b\" 3 }} {{ println \"x\" 1 }}", "1 2ab3 x 1\n"),
        ('{{ "tab\\tnl\\n\\u00e9" }}{{ `raw\\n` }}', "tab\tnl\né" + "raw\\n"),
        ("{{ json .Messages }}", '[{"Role":"user","Content":"a","Thinking":"","Images":null,"ToolCalls":[],'
         '"ToolName":"","ToolCallID":""},{"Role":"assistant","Content":"b","Thinking":"","Images":null,'
         '"ToolCalls":[],"ToolName":"","ToolCallID":""}]'),
        ("{{ .Missing }}|{{ .Missing.Deeper }}|{{ if .Missing }}t{{ else }}f{{ end }}", "<no value>|<no value>|f"),
        ("{{ 0x1F }} {{ 1_000 }} {{ 017 }} {{ 2.50 }} {{ 1e6 }} {{ 'a' }}", "31 1000 15 2.5 1e+06 97"),
    ],
)  # fmt: skip
def test_go_semantics(template: str, expected: str) -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    # naming .Messages (in a branch that never runs) keeps Ollama's messages path for every case
    template += "{{ if false }}{{ .Messages }}{{ end }}"
    assert render_go_template(template, None, messages) == expected


def test_current_date_functions() -> None:
    today = datetime.date.today()
    text = render_go_template(
        "{{ currentDate }} {{ yesterdayDate }}{{ if false }}{{ .Messages }}{{ end }}", None, []
    )
    # around midnight the two calls may straddle a day; both must be ISO dates one day apart
    first, second = (datetime.date.fromisoformat(x) for x in text.split()[:2])
    assert first - second == datetime.timedelta(days=1)
    assert abs((first - today).days) <= 1


def test_go_json_and_printing_rules() -> None:
    assert go_json({"b": 1.0, "a": [0.5, 1e21, 1e-7, -0.0], "<": "&\u2028"}) == (
        '{"\\u003c":"\\u0026\\u2028","a":[0.5,1e+21,1e-7,-0],"b":1}'
    )
    assert go_print([1, "a", None, {"z": 1, "y": True}], top=True) == "[1 a <nil> map[y:true z:1]]"
    assert go_print(1234567.0) == "1.234567e+06" and go_print(123456.0) == "123456"


@pytest.mark.parametrize(
    ("template", "line", "message"),
    [
        ("{{ .Prompt ", 1, "unclosed action"),
        ("a\nb\n{{ foo .X }}", 3, 'function "foo" not defined'),
        ("{{ if .X }}\n\nx", 3, "unexpected EOF"),
        ("x\n{{ end }}", 2, "unexpected {{end}}"),
        ('{{ define "x" }}{{ end }}', 1, '"define" (named templates) is not supported'),
        ('\n{{ template "x" . }}', 2, '"template" (named templates) is not supported'),
        ("{{ html .X }}", 1, 'function "html" is not supported'),
        ("{{ $x }}", 1, 'undefined variable "$x"'),
        ("{{ range .M }}{{ end }}{{ break }}", 1, "{{break}} outside {{range}}"),
        ("{{/* never closed", 1, "unclosed comment"),
        ("{{ .A | 3 }}", 1, "non executable command in pipeline stage 2"),
        ('{{ "unterminated }}', 1, "unterminated quoted string"),
        ("{{ .A ) }}", 1, "unexpected right paren"),
        ("{{ (.A }}", 1, "unclosed left paren"),
        ("{{ .A # }}", 1, "unrecognized character in action"),
        ("{{ with .A }}{{ else if .B }}{{ end }}", 1, "unexpected <if> in else"),
        ("{{}}", 1, "missing value for command"),
        ("{{ $a, $b := .X }}", 1, "too many declarations in command"),
    ],
)
def test_parse_errors_name_the_line(template: str, line: int, message: str) -> None:
    with pytest.raises(GoTemplateError) as info:
        parse_go_template(template)
    assert str(info.value).startswith(f"template: :{line}: ")
    assert message in str(info.value)


def test_execution_errors() -> None:
    with pytest.raises(GoTemplateExecError, match="can't evaluate field Foo in type"):
        render_go_template("{{ range .Messages }}{{ .Foo }}{{ end }}", None, [HELLO])
    with pytest.raises(GoTemplateExecError, match="index out of range: 5"):
        render_go_template("{{ index .Messages 5 }}", None, [HELLO])
    with pytest.raises(GoTemplateExecError, match="incompatible types for comparison"):
        render_go_template('{{ eq 1 "1" }}{{ .Messages }}', None, [])
    with pytest.raises(GoTemplateExecError, match="wrong number of args for not"):
        render_go_template("{{ not 1 2 }}{{ .Messages }}", None, [])
    with pytest.raises(GoTemplateExecError, match="invalid tool call arguments"):
        render_go_template(
            CHATML, None, [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{"}}]}]
        )


def test_hostile_templates_are_bounded() -> None:
    with pytest.raises(GoTemplateExecError, match="steps"):
        render_go_template("{{ range 1000000000 }}{{ end }}{{ .Messages }}", None, [])
    with pytest.raises(GoTemplateExecError, match="steps"):
        render_go_template("{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}{{ .Messages }}", None, [])
    big = "x" * 100_000
    with pytest.raises(GoTemplateExecError, match="output is longer"):
        render_go_template("{{ range 200 }}{{ $.System }}{{ end }}{{ .Messages }}", big, [])
    with pytest.raises(GoTemplateError, match="nested too deeply"):
        parse_go_template("{{ if 1 }}" * 500 + "{{ end }}" * 500)
    with pytest.raises(GoTemplateError, match="nested too deeply"):
        parse_go_template("{{ " + "(" * 500 + "1" + ")" * 500 + " }}")


def test_parse_is_cached_per_text() -> None:
    assert parse_go_template(CHATML) is parse_go_template(CHATML)
    assert parse_go_template(CHATML).uses_messages and not parse_go_template(CHATML_LEGACY).uses_messages


def test_is_go_template() -> None:
    assert is_go_template(CHATML) and not is_go_template("{% for m in messages %}{{ m }}{% endfor %}")
    assert not is_go_template("") and not is_go_template(None)


def test_create_refuses_a_template_that_does_not_parse(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", env={})
    digest = store.add_blob_file(write_tiny_gguf(tmp_path / "tiny.gguf")).digest
    bad = CreateRequest(model="bad", files={"tiny.gguf": digest}, template="line one\n{{ range .Messages }}")
    with pytest.raises(CreateError, match=r"^template error: template: :2: unexpected EOF$"):
        list(create_events(store, bad))
    good = CreateRequest(model="good", files={"tiny.gguf": digest}, template=CHATML)
    assert list(create_events(store, good))[-1] == {"status": "success"}


# -- the parser and executor raise nothing but their own error --------------------------------
_FRAGMENTS = st.sampled_from(
    ["{{", "}}", "{{-", "-}}", " ", "\n", ".", "$", "$x", ":=", "=", "|", "(", ")", ",", '"', "`", "'",
     "if", "else", "end", "range", "with", "break", "continue", "define", "template", "nil", "true",
     ".Messages", ".Role", ".Content", "$.System", "$i", "eq", "len", "slice", "index", "printf",
     "json", "and", "not", "0", "1", "-1", "1.5", "0x", "/*", "*/", "x", "\\", '"%s"', "é"]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAGMENTS, max_size=40).map("".join))
def test_fuzz_fragments_raise_only_template_errors(text: str) -> None:
    with contextlib.suppress(GoTemplateError):
        render_go_template(text, "S", [HELLO, GREAT, SHOW], [WEATHER_TOOL])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_any_text_raises_only_template_errors(text: str) -> None:
    with contextlib.suppress(GoTemplateError):
        parse_go_template(text)
