"""Tool calls in replies to prompts a Go template rendered (Ollama's rendered path, `tools/`).

The call's opening tag is the template's own: the first non-blank text inside its
`{{ if .ToolCalls }}` branch (`<tool_call>`, `[TOOL_CALLS]`, …; what comes from a `{` on is
dropped), or `{` when there is none, in which case a reply is a call only if it starts with JSON.
Text before the tag streams out as content (a possible half-written tag is held back); after it,
each JSON object naming a known tool with object `arguments` (or `parameters`) becomes one call,
sent whole as soon as it is complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from a3s_power.chat.gotemplate.ollama import GoTemplate
from a3s_power.chat.gotemplate.parse import Branch, Field, Node, Text
from a3s_power.chat.reply import ReplyDelta, tool_call_id


def _names_tool_calls(branch: Branch) -> bool:
    return any(
        isinstance(arg, Field) and "ToolCalls" in arg.idents for cmd in branch.pipe.cmds for arg in cmd.args
    )


def _tool_calls_branch(nodes: Sequence[Node]) -> Branch | None:
    for node in nodes:
        if not isinstance(node, Branch):
            continue
        if node.kind == "if" and _names_tool_calls(node):
            return node
        for body in (node.body, node.else_body or ()):
            found = _tool_calls_branch(body)
            if found is not None:
                return found
    return None


def _first_text(nodes: Sequence[Node]) -> str | None:
    for node in nodes:
        if isinstance(node, Text):
            if node.text.strip():
                return node.text
        elif isinstance(node, Branch):
            for body in (node.body, node.else_body or ()):
                found = _first_text(body)
                if found is not None:
                    return found
    return None


def tool_call_tag(template: GoTemplate) -> str:
    branch = _tool_calls_branch(template.tree.nodes)
    text = _first_text(branch.body) if branch is not None else None
    if text is None:
        return "{"
    tag = text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


class GoToolParser:
    """feed(piece) / finish() → ReplyDelta, as the pipeline's other reply parsers."""

    def __init__(self, tag: str, tools: Iterable[dict[str, Any]]) -> None:
        self.tag = tag
        self.names = {str((t.get("function") or t).get("name", "")) for t in tools} - {""}
        self.buffer = ""
        self.calling = False  # the tag was seen: the rest is calls
        self.done = False  # plain content from here on (JSON-tag mode with text first)
        self.index = 0
        self.raw = ""  # everything after the tag, for a reply that turns out to hold no call

    def _hold(self) -> int:
        """Length of the buffer's tail that could be the start of the tag."""
        for n in range(min(len(self.tag), len(self.buffer)), 0, -1):
            if self.buffer.endswith(self.tag[:n]):
                return n
        return 0

    def feed(self, piece: str) -> ReplyDelta:
        if self.done:
            return ReplyDelta(content=piece)
        self.buffer += piece
        if not self.calling:
            at = self.buffer.find(self.tag)
            if at < 0:
                keep = self._hold()
                content, self.buffer = (
                    self.buffer[: len(self.buffer) - keep],
                    self.buffer[len(self.buffer) - keep :],
                )
                if self.tag == "{" and content.strip():
                    self.done = True
                    content, self.buffer = content + self.buffer, ""
                return ReplyDelta(content=content)
            content, self.buffer = self.buffer[:at], self.buffer[at:]
            if self.tag == "{" and content.strip():
                self.done = True
                text, self.buffer = content + self.buffer, ""
                return ReplyDelta(content=text)
            self.calling = True
            if self.tag != "{":
                self.buffer = self.buffer[len(self.tag) :]
            self.raw = self.buffer
            return ReplyDelta(content=content, tool_calls=self._calls())
        self.raw += piece
        return ReplyDelta(tool_calls=self._calls())

    def _calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = []
        decoder = json.JSONDecoder()
        while True:
            start = self.buffer.find("{")
            if start < 0:
                return calls
            try:
                value, end = decoder.raw_decode(self.buffer, start)
            except json.JSONDecodeError:
                return calls  # not complete yet (or not JSON): wait for more
            self.buffer = self.buffer[end:]
            call = self._call(value)
            if call is not None:
                calls.append(call)

    def _call(self, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, dict) or value.get("name") not in self.names:
            return None
        arguments = value.get("arguments", value.get("parameters", {}))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                return None
        if not isinstance(arguments, dict):
            return None
        function = {"index": self.index, "name": value["name"], "arguments": arguments}
        self.index += 1
        return {"id": tool_call_id(), "function": function}

    def finish(self) -> ReplyDelta:
        if self.done or not self.calling:
            text, self.buffer = self.buffer, ""
            return ReplyDelta(content=text)
        calls = self._calls()
        if not calls and self.index == 0:  # a tag but no call after it: the text was content
            text = (self.tag if self.tag != "{" else "") + self.raw
            self.buffer = ""
            return ReplyDelta(content=text)
        return ReplyDelta(tool_calls=calls)


def forced_call_schema(tools: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The JSON of one call to one of `tools` (`{"name": …, "arguments": {…}}`)."""
    options = []
    for tool in tools:
        function = tool.get("function") or tool
        parameters = function.get("parameters") or {"type": "object"}
        options.append({
            "type": "object",
            "properties": {"name": {"const": function.get("name", "")}, "arguments": parameters},
            "required": ["name", "arguments"],
        })  # fmt: skip
    return options[0] if len(options) == 1 else {"anyOf": options}


def forced_call_grammar(call_grammar: str, tag: str) -> str:
    """`call_grammar` (GBNF of one call's JSON, rooted at `root`) behind the template's tag, so a
    required call starts at the reply's first token."""
    if tag == "{":
        return call_grammar
    renamed = re.sub(r"^root ::=", "go-forced-call ::=", call_grammar, count=1, flags=re.MULTILINE)
    return f"root ::= {json.dumps(tag)} [ \\t\\n]* go-forced-call\n{renamed}"
