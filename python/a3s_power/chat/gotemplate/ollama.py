"""Ollama's use of Go templates (`template/template.go` at ollama fb30760), re-implemented.

- A template that names neither `.Messages` nor `.Response` gets `{{ .Response }}` appended.
- Messages are collated first: every system message's content joins `.System` ("\\n\\n"), and
  consecutive messages of one role (tool results excepted) merge into one ("\\n\\n").
- `.Prompt` + `.Suffix` given (fill-in-the-middle) → one execution with Prompt, Suffix.
- The template names `.Messages` → one execution with System, Messages, Tools, Response "",
  Think, ThinkLevel, IsThinkSet (no `.Prompt`: a template asking for it gets `<no value>`).
- Otherwise (legacy templates) → one execution per (system, prompt, response) turn, and the last
  turn with everything after its `{{ .Response }}` cut off, so the prompt ends where the reply
  starts.

Template data are shaped as Ollama's Go structs (`templateMessage`, `templateTool`, …), so field
names, JSON encoding (sorted map keys, HTML-safe escapes, float64 numbers) and truthiness come out
as Ollama's. One deliberate difference: `{{ .Function }}` of a tool prints its JSON (as Ollama's
`api.ToolFunction.String` does) where Ollama's template copy of the struct would print Go's
`{name desc {…}}` struct formatting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from a3s_power.chat.gotemplate.execute import (
    DEFAULT_MAX_STEPS,
    FUNCS,
    GoTemplateExecError,
    execute,
)
from a3s_power.chat.gotemplate.parse import (
    Action,
    Arg,
    Branch,
    Command,
    Field,
    Node,
    Pipe,
    Text,
    Tree,
    Variable,
    parse,
)
from a3s_power.chat.gotemplate.values import GoList, GoStruct, JsonMap, OrderedMap, PropertyType

THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass(frozen=True, slots=True)
class GoTemplate:
    tree: Tree
    legacy_tail: Tree  # the tree cut after {{ .Response }} (the last legacy turn)
    vars: frozenset[str]  # every field / variable name, lower-cased (Ollama's Template.Vars)
    source: str

    @property
    def uses_messages(self) -> bool:
        return "messages" in self.vars


def is_go_template(text: str | None) -> bool:
    """A TEMPLATE layer in Go's syntax (not Jinja, which A3S Power also accepts there)."""
    return bool(text) and "{%" not in (text or "")


@lru_cache(maxsize=128)
def parse_go_template(text: str) -> GoTemplate:
    """Parse once per template text; GoTemplateError (naming the line) if it cannot be used."""
    tree = parse(text, FUNCS)
    names = frozenset(n.lower() for n in _identifiers(tree.nodes))
    if "messages" not in names and "response" not in names:
        tree = Tree(
            (*tree.nodes, Action(Pipe((), False, (Command((Field(("Response",), 0),), 0),), 0), 0)), text
        )
    return GoTemplate(tree, Tree(_cut_after_response(tree.nodes), text), names, text)


def check_go_template(text: str) -> None:
    parse_go_template(text)


# -- identifiers (Ollama's template.Identifiers) -------------------------------------------------
def _identifiers(nodes: Sequence[Node]) -> list[str]:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, Action):
            out += _pipe_identifiers(node.pipe)
        elif isinstance(node, Branch):
            out += _pipe_identifiers(node.pipe)
            out += _identifiers(node.body)
            if node.else_body is not None:
                out += _identifiers(node.else_body)
    return out


def _pipe_identifiers(pipe: Pipe) -> list[str]:
    out: list[str] = []
    for cmd in pipe.cmds:
        for arg in cmd.args:
            if isinstance(arg, Field | Variable):
                out += arg.idents
            elif isinstance(arg, Pipe):
                out += _pipe_identifiers(arg)
    return out


# -- the legacy tail (Ollama's deleteNode after the first .Response field) ----------------------
def _cut_after_response(nodes: Sequence[Node]) -> tuple[Node, ...]:
    cut = False

    def hit(node: object) -> bool:
        nonlocal cut
        if isinstance(node, Field) and "Response" in node.idents:
            cut = True
            return False
        return cut

    def walk_list(items: Sequence[Node]) -> tuple[Node, ...]:
        kept = []
        for item in items:
            result = walk(item)
            if result is not None:
                kept.append(result)
        return tuple(kept)

    def walk_pipe(pipe: Pipe) -> Pipe | None:
        if hit(pipe):
            return None
        cmds = []
        for cmd in pipe.cmds:
            args: list[Arg] = []
            for arg in cmd.args:
                if hit(arg):
                    continue
                if isinstance(arg, Pipe):
                    sub = walk_pipe(arg)
                    if sub is not None:
                        args.append(sub)
                else:
                    args.append(arg)
            if not args:
                return None
            cmds.append(Command(tuple(args), cmd.line))
        return Pipe(pipe.decl, pipe.is_assign, tuple(cmds), pipe.line)

    def walk(node: Node) -> Node | None:
        if hit(node):
            return None
        if isinstance(node, Action):
            pipe = walk_pipe(node.pipe)
            return Action(pipe, node.line) if pipe is not None else None
        if isinstance(node, Branch):
            body = walk_list(node.body)
            else_body = None
            if node.else_body is not None:
                else_body = () if cut else walk_list(node.else_body)
            return Branch(node.kind, node.pipe, body, else_body, node.line)
        return node

    return walk_list(nodes)


# -- template data shaped as Ollama's structs ---------------------------------------------------
def _go_any(value: Any) -> Any:
    """A JSON value as Go decodes it into `any`: numbers are float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _go_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_go_any(v) for v in value]
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _arguments(raw: Any) -> JsonMap:
    if isinstance(raw, str):
        if not raw.strip():
            return JsonMap()
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise GoTemplateExecError(f"invalid tool call arguments: {raw[:100]}") from None
    if raw is None:
        return JsonMap()
    if not isinstance(raw, Mapping):
        raise GoTemplateExecError("invalid tool call arguments: not a JSON object")
    return JsonMap({str(k): _go_any(v) for k, v in raw.items()})


def _tool_call(call: Mapping[str, Any]) -> GoStruct:
    function = call.get("function") or {}
    fn = GoStruct(
        "template.templateToolCallFunction",
        {
            "Index": int(function.get("index") or 0),
            "Name": _text(function.get("name")),
            "Arguments": _arguments(function.get("arguments")),
        },
    )
    return GoStruct("template.templateToolCall", {"ID": _text(call.get("id")), "Function": fn})


@dataclass
class _Message:
    role: str
    content: str
    thinking: str
    images: list[Any] | None
    tool_calls: list[GoStruct]
    tool_name: str
    tool_call_id: str

    def struct(self) -> GoStruct:
        return GoStruct(
            "*template.templateMessage",
            {
                "Role": self.role,
                "Content": self.content,
                "Thinking": self.thinking,
                "Images": self.images,
                "ToolCalls": self.tool_calls,
                "ToolName": self.tool_name,
                "ToolCallID": self.tool_call_id,
            },
        )


def _message(m: Mapping[str, Any]) -> _Message:
    """An Ollama message (`thinking`, `tool_name`, arguments objects) or the OpenAI-shaped one the
    Jinja path takes (`reasoning_content`, `name`, arguments as JSON strings)."""
    content = m.get("content")
    if isinstance(content, list):  # OpenAI content parts: the text parts, in order
        content = "".join(_text(p.get("text")) for p in content if isinstance(p, Mapping))
    return _Message(
        role=_text(m.get("role")),
        content=_text(content),
        thinking=_text(m.get("thinking") or m.get("reasoning_content")),
        images=list(m["images"]) if m.get("images") else None,
        tool_calls=[_tool_call(c) for c in m.get("tool_calls") or [] if isinstance(c, Mapping)],
        tool_name=_text(m.get("tool_name") or m.get("name")),
        tool_call_id=_text(m.get("tool_call_id")),
    )


def collate(messages: Sequence[_Message]) -> tuple[str, list[_Message]]:
    """Ollama's collate: all system contents joined, consecutive same-role messages merged."""
    system: list[str] = []
    out: list[_Message] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content)
        if out and out[-1].role == m.role and m.role != "tool":
            out[-1].content += "\n\n" + m.content
        else:
            out.append(_Message(m.role, m.content, m.thinking, m.images, m.tool_calls, m.tool_name,
                                m.tool_call_id))  # fmt: skip
    return "\n\n".join(system), out


def _property(raw: Any) -> GoStruct:
    raw = raw if isinstance(raw, Mapping) else {}
    types = raw.get("type")
    nested = raw.get("properties")
    return GoStruct(
        "api.ToolProperty",
        {
            "AnyOf": [_property(x) for x in raw.get("anyOf") or []],
            "Type": PropertyType([types] if isinstance(types, str) else [str(t) for t in types or []]),
            "Items": _go_any(raw.get("items")),
            "Description": _text(raw.get("description")),
            "Enum": _go_any(list(raw.get("enum") or [])),
            "Properties": OrderedMap((str(k), _property(v)) for k, v in nested.items())
            if isinstance(nested, Mapping)
            else None,
            "Required": [str(x) for x in raw.get("required") or []],
        },
        [
            ("anyOf", "AnyOf", True),
            ("type", "Type", True),
            ("items", "Items", True),
            ("description", "Description", True),
            ("enum", "Enum", True),
            ("properties", "Properties", True),
            ("required", "Required", True),
        ],  # fmt: skip
    )


def _tool(raw: Mapping[str, Any]) -> GoStruct:
    function = raw.get("function") or {}
    params = function.get("parameters") or {}
    props = params.get("properties")
    parameters = GoStruct(
        "template.templateToolFunctionParameters",
        {
            "Type": _text(params.get("type")),
            "Defs": _go_any(params.get("$defs")),
            "Items": _go_any(params.get("items")),
            "Required": [str(x) for x in params.get("required") or []],
            "Properties": JsonMap((str(k), _property(v)) for k, v in props.items())
            if isinstance(props, Mapping)
            else JsonMap(),
        },
        [
            ("type", "Type", False),
            ("$defs", "Defs", True),
            ("items", "Items", True),
            ("required", "Required", True),
            ("properties", "Properties", False),
        ],  # fmt: skip
        stringer=True,
    )
    fn = GoStruct(
        "template.templateToolFunction",
        {
            "Name": _text(function.get("name")),
            "Description": _text(function.get("description")),
            "Parameters": parameters,
        },  # fmt: skip
        [("name", "Name", False), ("description", "Description", False), ("parameters", "Parameters", False)],
        stringer=True,
    )
    return GoStruct(
        "template.templateTool",
        {"Type": _text(raw.get("type")), "Items": _go_any(raw.get("items")), "Function": fn},
        [("type", "Type", False), ("items", "Items", True), ("function", "Function", False)],
        stringer=True,
    )


def _pipe_fields(pipe: Pipe) -> list[Field]:
    """The fields a pipeline names (parenthesised pipelines included, field chains not, as Go's
    visitor leaves ChainNodes alone)."""
    out: list[Field] = []

    def command(cmd: Command) -> None:
        for arg in cmd.args:
            if isinstance(arg, Field):
                out.append(arg)
            elif isinstance(arg, Pipe):
                for inner in arg.cmds:
                    command(inner)

    for cmd in pipe.cmds:
        command(cmd)
    return out


def infer_thinking_tags(template: GoTemplate) -> tuple[str, str]:
    """(opening, closing) thinking tags of `template`, "" where none is found (the last `.Thinking`
    that qualifies wins, as in Ollama's walk)."""
    found = ["", ""]

    def walk(nodes: Sequence[Node], lists: list[Sequence[Node]], in_messages_range: bool) -> None:
        lists.append(nodes)
        for node in nodes:
            if isinstance(node, Action):
                if in_messages_range and any(f.idents[:1] == ("Thinking",) for f in _pipe_fields(node.pipe)):
                    nearest = lists[-1]
                    first, last = nearest[0], nearest[-1]
                    if isinstance(first, Text):
                        found[0] = first.text.strip()
                    if isinstance(last, Text):
                        found[1] = last.text.strip()
            elif isinstance(node, Branch):
                inside = in_messages_range
                if node.kind == "range":  # the nearest range decides
                    inside = any(f.idents[:1] == ("Messages",) for f in _pipe_fields(node.pipe))
                for body in (node.body, node.else_body):
                    if body:
                        walk(body, lists, inside)
        lists.pop()

    walk(template.tree.nodes, [], False)
    return found[0], found[1]


def think_values(think: bool | str | None) -> dict[str, Any]:
    """`.Think`, `.ThinkLevel`, `.IsThinkSet` as Ollama sets them from the request's `think`."""
    if isinstance(think, str):
        return {"Think": think in THINK_LEVELS, "ThinkLevel": think, "IsThinkSet": True}
    return {"Think": think is True, "ThinkLevel": "medium" if think is True else "",
            "IsThinkSet": think is not None}  # fmt: skip


def render_go_template(
    template_text: str,
    system: str | None,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    think: bool | str | None = None,
    prompt: str = "",
    suffix: str = "",
) -> str:
    """The prompt Ollama renders from a Go TEMPLATE.

    `system` (when not None and not empty) goes first as a system message — the caller decides
    whether the Modelfile's SYSTEM applies; `messages` are Ollama- or OpenAI-shaped dicts; `tools`
    the request's tools (OpenAI / Ollama shape); `prompt` + `suffix` select fill-in-the-middle.
    Raises GoTemplateError (parse) or GoTemplateExecError (execution)."""
    tmpl = parse_go_template(template_text)
    flags = think_values(think)
    msgs = [_message(m) for m in messages]
    if system:
        msgs.insert(0, _message({"role": "system", "content": system}))
    budget = DEFAULT_MAX_STEPS + 2_000 * (len(msgs) + len(tools or ()))
    if prompt and suffix:
        data = {"Prompt": prompt, "Suffix": suffix, "Response": "", **flags}
        return execute(tmpl.tree, data, max_steps=budget)
    collated_system, collated = collate(msgs)
    if tmpl.uses_messages:
        data = {
            "System": collated_system,
            "Messages": [m.struct() for m in collated],
            "Tools": GoList((_tool(t) for t in tools), nil=False) if tools is not None else GoList(nil=True),
            "Response": "",
            **flags,
        }
        return execute(tmpl.tree, data, max_steps=budget)
    return _render_legacy(tmpl, collated, flags, budget)


def _render_legacy(tmpl: GoTemplate, messages: Sequence[_Message], flags: dict[str, Any], budget: int) -> str:
    out: list[str] = []
    turn = {"System": "", "Prompt": "", "Response": ""}

    def flush() -> None:
        out.append(execute(tmpl.tree, {**turn, **flags}, max_steps=budget))
        turn.update(System="", Prompt="", Response="")

    for m in messages:
        if m.role == "system":
            if turn["Prompt"] or turn["Response"]:
                flush()
            turn["System"] = m.content
        elif m.role == "user":
            if turn["Response"]:
                flush()
            turn["Prompt"] = m.content
        elif m.role == "assistant":
            turn["Response"] = m.content
    out.append(execute(tmpl.legacy_tail, {**turn, **flags}, max_steps=budget))
    return "".join(out)


__all__ = [
    "GoTemplate",
    "check_go_template",
    "collate",
    "infer_thinking_tags",
    "is_go_template",
    "parse_go_template",
    "render_go_template",
    "think_values",
]
