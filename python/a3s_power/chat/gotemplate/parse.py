"""Lexer and parser for the subset of Go's `text/template` that Ollama's model templates use.

The grammar and the whitespace rules follow Go's `text/template/parse`: `{{-` / `-}}` trim the
adjacent text's spaces, tabs and newlines; `{{/* … */}}` is a comment; actions may span lines;
`if` / `else if` / `else with` / `with` / `range` (one or two variables, `break`, `continue`) /
`end`; declarations `$x := …` and assignments `$x = …`; pipelines `a | b c`; parenthesised
pipelines with field chains; string, raw-string, char, number, bool and nil literals.
`define`, `template` and `block` (named sub-templates) are refused, as is any function this
renderer does not provide: the error names the line, as Go's does (`template: :3: …`).

The parser raises nothing but `GoTemplateError`; input size and nesting depth are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from a3s_power.errors import InvalidRequest

MAX_TEMPLATE_CHARS = 1 << 20
MAX_DEPTH = 100  # nested control structures and parentheses

SPACE_CHARS = " \t\r\n"
KEYWORDS = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with"}
)


class GoTemplateError(InvalidRequest):
    """A template that cannot be parsed (or, as `GoTemplateExecError`, executed)."""


# -- AST ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Field:
    """`.A.B`: idents ("A", "B")."""

    idents: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Variable:
    """`$x.A`: idents ("$x", "A"); `$` alone is ("$",)."""

    idents: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Dot:
    line: int


@dataclass(frozen=True, slots=True)
class Nil:
    line: int


@dataclass(frozen=True, slots=True)
class Identifier:
    """A function name."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Chain:
    """`(pipeline).A.B`."""

    node: Pipe
    fields: tuple[str, ...]
    line: int


Arg = Union[Field, Variable, Dot, Nil, Identifier, Literal, Chain, "Pipe"]


@dataclass(frozen=True, slots=True)
class Command:
    args: tuple[Arg, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Pipe:
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[Command, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Action:
    pipe: Pipe
    line: int


@dataclass(frozen=True, slots=True)
class Branch:
    kind: str  # "if" | "with" | "range"
    pipe: Pipe
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None
    line: int


@dataclass(frozen=True, slots=True)
class Break:
    line: int


@dataclass(frozen=True, slots=True)
class Continue:
    line: int


Node = Text | Action | Branch | Break | Continue


@dataclass(frozen=True, slots=True)
class Tree:
    nodes: tuple[Node, ...]
    source: str = field(repr=False, default="")


# -- lexer --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Item:
    kind: str  # text, left, right, space, field, variable, ident, keyword, string, number, char,
    #            bool, dot, pipe, declare, assign, lparen, rparen, comma, eof
    val: str
    line: int


def _err(line: int, message: str) -> GoTemplateError:
    return GoTemplateError(f"template: :{line}: {message}")


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def _unquote(body: str, line: int) -> str:
    """Go's strconv.Unquote of a double-quoted string (the quotes already removed)."""
    out: list[str] = []
    i = 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
              "\\": "\\", '"': '"'}  # fmt: skip
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(body):
            raise _err(line, "invalid syntax")
        e = body[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise _err(line, "invalid syntax")
            code = int(digits, 16)
            if e != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
                raise _err(line, "invalid syntax")
            out.append(chr(code))
            i += 2 + width
        elif e in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise _err(line, "invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise _err(line, "invalid syntax")
    return "".join(out)


def _number(text: str, line: int) -> int | float:
    """A Go numeric literal (ints with 0x/0o/0b prefixes and underscores, floats)."""
    if text.endswith("i"):
        raise _err(line, f"complex numbers are not supported: {text}")
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    try:
        if body[:2].lower() in ("0x", "0o", "0b"):
            if body[:2].lower() == "0x" and any(c in body for c in ".pP"):
                return sign * float.fromhex(body)
            return sign * int(body, 0)
        if body and all(c.isdigit() or c == "_" for c in body):
            if len(body) > 1 and body[0] == "0":  # Go: a leading 0 is octal
                return sign * int(body[1:], 8)
            return sign * int(body)
        return sign * float(body)
    except ValueError:
        raise _err(line, f'bad number syntax: "{text}"') from None


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.line = 1
        self.items: list[Item] = []
        self.paren_depth = 0

    def _advance(self, n: int) -> str:
        chunk = self.src[self.pos : self.pos + n]
        self.line += chunk.count("\n")
        self.pos += n
        return chunk

    def _emit(self, kind: str, val: str, line: int) -> None:
        self.items.append(Item(kind, val, line))

    def _at_right_delim(self) -> tuple[bool, bool]:
        s = self.src
        p = self.pos
        if p + 1 < len(s) and s[p] in SPACE_CHARS and s[p + 1] == "-" and s.startswith("}}", p + 2):
            return True, True
        if s.startswith("}}", p):
            return True, False
        return False, False

    def run(self) -> list[Item]:
        src = self.src
        while True:
            start = src.find("{{", self.pos)
            if start < 0:
                if self.pos < len(src):
                    self._emit("text", src[self.pos :], self.line)
                    self._advance(len(src) - self.pos)
                break
            trim_left = (
                src.startswith("-", start + 2) and start + 3 < len(src) and src[start + 3] in SPACE_CHARS
            )
            text = src[self.pos : start]
            line = self.line
            self._advance(start - self.pos)
            if trim_left:
                text = text.rstrip(SPACE_CHARS)
            if text:
                self._emit("text", text, line)
            self._advance(2 + (2 if trim_left else 0))
            if src.startswith("/*", self.pos):
                self._comment()
                continue
            self._emit("left", "{{", self.line)
            self._inside_action()
        self._emit("eof", "", self.line)
        return self.items

    def _trim_following(self) -> None:
        rest = self.src[self.pos :]
        self._advance(len(rest) - len(rest.lstrip(SPACE_CHARS)))

    def _comment(self) -> None:
        end = self.src.find("*/", self.pos + 2)
        if end < 0:
            raise _err(self.line, "unclosed comment")
        self._advance(end + 2 - self.pos)
        delim, trim = self._at_right_delim()
        if not delim:
            raise _err(self.line, "comment ends before closing delimiter")
        self._advance(4 if trim else 2)
        if trim:
            self._trim_following()

    def _inside_action(self) -> None:  # noqa: C901 - one branch per token kind, as Go's lexer
        src = self.src
        while True:
            delim, trim = self._at_right_delim()
            if delim:
                if self.paren_depth:
                    raise _err(self.line, "unclosed left paren")
                self._emit("right", "}}", self.line)
                self._advance(4 if trim else 2)
                if trim:
                    self._trim_following()
                return
            if self.pos >= len(src):
                raise _err(self.line, "unclosed action")
            c = src[self.pos]
            line = self.line
            if c in SPACE_CHARS:
                n = self.pos
                while n < len(src) and src[n] in SPACE_CHARS:
                    if src.startswith("-}}", n + 1):  # this space starts a " -}}"
                        break
                    n += 1
                self._emit("space", self._advance(n - self.pos), line)
            elif c == "=":
                self._advance(1)
                self._emit("assign", "=", line)
            elif c == ":":
                if not src.startswith(":=", self.pos):
                    raise _err(line, "expected :=")
                self._advance(2)
                self._emit("declare", ":=", line)
            elif c == "|":
                self._advance(1)
                self._emit("pipe", "|", line)
            elif c == '"':
                n = self.pos + 1
                while True:
                    if n >= len(src) or src[n] == "\n":
                        raise _err(line, "unterminated quoted string")
                    if src[n] == "\\":
                        n += 2
                        continue
                    if src[n] == '"':
                        break
                    n += 1
                self._emit("string", self._advance(n + 1 - self.pos), line)
            elif c == "`":
                n = src.find("`", self.pos + 1)
                if n < 0:
                    raise _err(line, "unterminated raw quoted string")
                self._emit("rawstring", self._advance(n + 1 - self.pos), line)
            elif c == "'":
                n = self.pos + 1
                while True:
                    if n >= len(src) or src[n] == "\n":
                        raise _err(line, "unterminated character constant")
                    if src[n] == "\\":
                        n += 2
                        continue
                    if src[n] == "'":
                        break
                    n += 1
                self._emit("char", self._advance(n + 1 - self.pos), line)
            elif c == "$":
                n = self.pos + 1
                while n < len(src) and _is_alnum(src[n]):
                    n += 1
                self._emit("variable", self._advance(n - self.pos), line)
                self._check_terminator()
            elif c == ".":
                nxt = src[self.pos + 1] if self.pos + 1 < len(src) else ""
                if nxt.isdigit():
                    self._lex_number()
                elif _is_alnum(nxt) and not nxt.isdigit():
                    n = self.pos + 1
                    while n < len(src) and _is_alnum(src[n]):
                        n += 1
                    self._emit("field", self._advance(n - self.pos), line)
                    self._check_terminator()
                else:
                    self._advance(1)
                    self._emit("dot", ".", line)
            elif c in "+-" or c.isdigit():
                self._lex_number()
            elif c == "_" or c.isalpha():
                n = self.pos
                while n < len(src) and _is_alnum(src[n]):
                    n += 1
                word = self._advance(n - self.pos)
                if word in KEYWORDS:
                    self._emit("keyword", word, line)
                elif word in ("true", "false"):
                    self._emit("bool", word, line)
                else:
                    self._emit("ident", word, line)
                self._check_terminator()
            elif c == "(":
                self.paren_depth += 1
                if self.paren_depth > MAX_DEPTH:
                    raise _err(line, "parentheses nested too deeply")
                self._advance(1)
                self._emit("lparen", "(", line)
            elif c == ")":
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    raise _err(line, "unexpected right paren")
                self._advance(1)
                self._emit("rparen", ")", line)
            elif c == ",":
                self._advance(1)
                self._emit("comma", ",", line)
            else:
                raise _err(line, f"unrecognized character in action: {_go_rune(c)}")

    def _check_terminator(self) -> None:
        src = self.src
        if self.pos >= len(src):
            return
        c = src[self.pos]
        if c in SPACE_CHARS or c in ".,|:()" or self._at_right_delim()[0] or c == "=":
            return
        raise _err(self.line, f"bad character {_go_rune(c)}")

    def _lex_number(self) -> None:
        src = self.src
        n = self.pos
        if n < len(src) and src[n] in "+-":
            n += 1
        while n < len(src) and (_is_alnum(src[n]) or src[n] == "."):
            if src[n] in "eEpP" and n + 1 < len(src) and src[n + 1] in "+-":
                n += 2
                continue
            n += 1
        text = self._advance(n - self.pos)
        if text in ("+", "-"):
            raise _err(self.line, f'bad number syntax: "{text}"')
        self._emit("number", text, self.line)


def _go_rune(c: str) -> str:
    return f"U+{ord(c):04X} {c!r}" if c.isprintable() else f"U+{ord(c):04X}"


_OPERAND_START = frozenset(
    {"bool", "char", "dot", "field", "ident", "number", "string", "rawstring", "variable", "lparen"}
)


# -- parser -------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, items: list[Item], funcs: frozenset[str]) -> None:
        self.items = items
        self.i = 0
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.depth = 0

    def peek(self) -> Item:
        return self.items[self.i]

    def next(self) -> Item:
        item = self.items[self.i]
        if item.kind != "eof":
            self.i += 1
        return item

    def backup(self) -> None:
        self.i -= 1

    def next_non_space(self) -> Item:
        item = self.next()
        while item.kind == "space":
            item = self.next()
        return item

    def peek_non_space(self) -> Item:
        item = self.next_non_space()
        if item.kind != "eof":
            self.backup()
        return item

    def unexpected(self, item: Item, context: str) -> GoTemplateError:
        shown = "EOF" if item.kind == "eof" else item.val
        return _err(item.line, f"unexpected {_describe(item, shown)} in {context}")

    # list of nodes up to {{end}} / {{else}} / EOF
    def item_list(self, top: bool = False) -> tuple[list[Node], str, Item]:
        nodes: list[Node] = []
        while True:
            item = self.peek()
            if item.kind == "eof":
                if top:
                    return nodes, "eof", item
                raise _err(item.line, "unexpected EOF")
            if item.kind == "text":
                self.next()
                nodes.append(Text(item.val))
                continue
            self.next()  # "left"
            kw = self.peek_non_space()
            if kw.kind == "keyword" and kw.val in ("end", "else"):
                self.next_non_space()
                if top:
                    raise _err(kw.line, f"unexpected {{{{{kw.val}}}}}")
                return nodes, kw.val, kw
            nodes.append(self.action())

    def action(self) -> Node:
        item = self.next_non_space()
        if item.kind == "keyword":
            if item.val in ("if", "with", "range"):
                return self.control(item.val, item.line)
            if item.val in ("break", "continue"):
                if self.range_depth == 0:
                    raise _err(item.line, f"{{{{{item.val}}}}} outside {{{{range}}}}")
                end = self.next_non_space()
                if end.kind != "right":
                    raise self.unexpected(end, f"{{{{{item.val}}}}}")
                return Break(item.line) if item.val == "break" else Continue(item.line)
            if item.val in ("define", "template", "block"):
                raise _err(item.line, f'"{item.val}" (named templates) is not supported by this renderer')
        self.backup()
        pipe = self.pipeline("command", "right")
        return Action(pipe, item.line)

    def control(self, kind: str, line: int) -> Branch:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _err(line, "control structures nested too deeply")
        mark = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range":
            self.range_depth += 1
        body, ended, end_item = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_body: list[Node] | None = None
        if ended == "else":
            nxt = self.peek_non_space()
            if kind in ("if", "with") and nxt.kind == "keyword" and nxt.val == kind:
                # {{else if …}} / {{else with …}}: an if/with nested in the else, sharing the {{end}}
                self.next_non_space()
                else_body = [self.control(nxt.val, nxt.line)]
            else:
                close = self.next_non_space()
                if close.kind != "right":
                    raise self.unexpected(close, "else")
                else_body, ended, end_item = self.item_list()
                if ended != "end":
                    raise _err(end_item.line, f"expected end; found {{{{{ended}}}}}")
                self._close_end(end_item)
        else:
            self._close_end(end_item)
        del self.vars[mark:]
        self.depth -= 1
        return Branch(kind, pipe, tuple(body), tuple(else_body) if else_body is not None else None, line)

    def _close_end(self, end_item: Item) -> None:
        close = self.next_non_space()
        if close.kind != "right":
            raise self.unexpected(close, "end")

    def pipeline(self, context: str, end: str) -> Pipe:
        line = self.peek_non_space().line
        decl: list[str] = []
        is_assign = False
        save = self.i
        v = self.next_non_space()
        if v.kind == "variable":
            nxt = self.peek_non_space()
            if nxt.kind in ("assign", "declare"):
                is_assign = nxt.kind == "assign"
                self.next_non_space()
                decl.append(v.val)
            elif nxt.kind == "comma":
                self.next_non_space()
                decl.append(v.val)
                if context != "range":
                    raise _err(nxt.line, f"too many declarations in {context}")
                second = self.next_non_space()
                if second.kind != "variable":
                    raise _err(second.line, "range can only initialize variables")
                op = self.next_non_space()
                if op.kind not in ("assign", "declare"):
                    raise self.unexpected(op, context)
                is_assign = op.kind == "assign"
                decl.append(second.val)
            else:
                self.i = save
        else:
            self.i = save
        if not is_assign:
            self.vars.extend(decl)
        cmds: list[Command] = []
        while True:
            token = self.next_non_space()
            if token.kind == end:
                if not cmds:
                    raise _err(token.line, f"missing value for {context}")
                for n, cmd in enumerate(cmds[1:], start=2):
                    if isinstance(cmd.args[0], Literal | Dot | Nil):
                        raise _err(cmd.line, f"non executable command in pipeline stage {n}")
                return Pipe(tuple(decl), is_assign, tuple(cmds), line)
            if token.kind in _OPERAND_START or (token.kind == "keyword" and token.val == "nil"):
                self.backup()
                cmds.append(self.command())
            else:
                raise self.unexpected(token, context)

    def command(self) -> Command:
        line = self.peek_non_space().line
        args: list[Arg] = []
        while True:
            self.peek_non_space()
            args.append(self.operand())
            token = self.next()
            if token.kind == "space":
                nxt = self.peek_non_space()
                if nxt.kind in ("right", "rparen", "pipe"):
                    token = self.next_non_space()
                else:
                    continue
            if token.kind in ("right", "rparen"):
                self.backup()
            elif token.kind != "pipe":
                raise self.unexpected(token, "operand")
            break
        return Command(tuple(args), line)

    def operand(self) -> Arg:
        node = self.term()
        if self.peek().kind != "field":
            return node
        chain: list[str] = []
        while self.peek().kind == "field":
            chain.append(self.next().val[1:])
        if isinstance(node, Field):
            return Field(node.idents + tuple(chain), node.line)
        if isinstance(node, Variable):
            return Variable(node.idents + tuple(chain), node.line)
        if isinstance(node, Literal | Nil | Dot):
            raise _err(node.line, f"unexpected . after term {_arg_text(node)!r}")
        if isinstance(node, Pipe):
            return Chain(node, tuple(chain), node.line)
        raise _err(node.line, f"unexpected . after term {_arg_text(node)!r}")

    def term(self) -> Arg:
        token = self.next_non_space()
        kind = token.kind
        if kind == "ident":
            if token.val in ("html", "js", "urlquery", "call"):
                raise _err(token.line, f'function "{token.val}" is not supported by this renderer')
            if token.val not in self.funcs:
                raise _err(token.line, f'function "{token.val}" not defined')
            return Identifier(token.val, token.line)
        if kind == "dot":
            return Dot(token.line)
        if kind == "keyword" and token.val == "nil":
            return Nil(token.line)
        if kind == "variable":
            if token.val not in self.vars:
                raise _err(token.line, f'undefined variable "{token.val}"')
            return Variable((token.val,), token.line)
        if kind == "field":
            return Field((token.val[1:],), token.line)
        if kind == "bool":
            return Literal(token.val == "true", token.val, token.line)
        if kind == "number":
            return Literal(_number(token.val, token.line), token.val, token.line)
        if kind == "char":
            body = token.val[1:-1]
            value = "'" if body == "\\'" else _unquote(body, token.line) if body.startswith("\\") else body
            if len(value) != 1:
                raise _err(token.line, f"malformed character constant: {token.val}")
            return Literal(ord(value), token.val, token.line)
        if kind == "string":
            return Literal(_unquote(token.val[1:-1], token.line), token.val, token.line)
        if kind == "rawstring":
            return Literal(token.val[1:-1].replace("\r", ""), token.val, token.line)
        if kind == "lparen":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _err(token.line, "parentheses nested too deeply")
            pipe = self.pipeline("parenthesized pipeline", "rparen")
            self.depth -= 1
            return pipe
        raise self.unexpected(token, "operand")


def _describe(item: Item, shown: str) -> str:
    if item.kind == "right":
        return "}}"
    if item.kind == "eof":
        return "EOF"
    if item.kind in ("string", "rawstring"):
        return f"quoted string {shown}"
    if item.kind == "number":
        return f"number {shown}"
    if item.kind == "keyword":
        return f"<{shown}>"
    return f'"{shown}"'


def _arg_text(node: Arg) -> str:
    if isinstance(node, Literal):
        return node.text
    if isinstance(node, Nil):
        return "nil"
    if isinstance(node, Dot):
        return "."
    return "?"


def parse(source: str, funcs: frozenset[str]) -> Tree:
    """Parse `source`; every failure is a GoTemplateError naming the line."""
    if not isinstance(source, str):
        raise GoTemplateError("template: the template must be text")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise GoTemplateError(f"template: longer than {MAX_TEMPLATE_CHARS} characters")
    items = _Lexer(source).run()
    parser = _Parser(items, funcs)
    nodes, _, _ = parser.item_list(top=True)
    return Tree(tuple(nodes), source)
