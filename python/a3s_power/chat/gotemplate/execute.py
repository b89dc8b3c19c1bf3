"""Execute a parsed template against Go-shaped data (Go's `text/template` exec semantics).

Work is bounded: every node and command counts against a step budget, and the output against a
size limit, so a hostile template (a `range` over a huge integer, nested loops) fails with
`GoTemplateExecError` instead of hanging or exhausting memory.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from typing import Any

from a3s_power.chat.gotemplate.parse import (
    Action,
    Arg,
    Branch,
    Break,
    Chain,
    Command,
    Continue,
    Dot,
    Field,
    GoTemplateError,
    Identifier,
    Literal,
    Nil,
    Node,
    Pipe,
    Text,
    Tree,
    Variable,
)
from a3s_power.chat.gotemplate.values import (
    GoStruct,
    GoValueError,
    OrderedMap,
    PropertyType,
    go_json,
    go_print,
    truth,
    type_name,
)

MAX_OUTPUT_CHARS = 8 << 20
DEFAULT_MAX_STEPS = 200_000


class GoTemplateExecError(GoTemplateError):
    """Executing the template failed (Ollama answers these with 500)."""

    status = 500


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NO_FINAL = object()

# functions the renderer provides: Go's builtins that Ollama templates use, and Ollama's own
BUILTINS = frozenset({"and", "or", "not", "len", "index", "slice", "eq", "ne", "lt", "le", "gt", "ge",
                      "print", "printf", "println"})  # fmt: skip
OLLAMA_FUNCS = frozenset({"json", "currentDate", "yesterdayDate", "toTypeScriptType"})
FUNCS = BUILTINS | OLLAMA_FUNCS


def _node_text(node: Arg | Command) -> str:
    if isinstance(node, Field):
        return "." + ".".join(node.idents)
    if isinstance(node, Variable):
        return node.idents[0] + "".join("." + x for x in node.idents[1:])
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Literal):
        return node.text
    if isinstance(node, Dot):
        return "."
    if isinstance(node, Nil):
        return "nil"
    if isinstance(node, Command):
        return " ".join(_node_text(a) for a in node.args)
    if isinstance(node, Chain):
        return "(" + _node_text(node.node) + ")." + ".".join(node.fields)
    return " | ".join(_node_text(c) for c in node.cmds)


class _State:
    def __init__(self, root: Any, max_steps: int) -> None:
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.max_steps = max_steps
        self.line = 0
        self.at = ""

    # -- bookkeeping
    def step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > self.max_steps:
            raise GoTemplateExecError(
                f"template: executing the template took more than {self.max_steps} steps"
            )

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT_CHARS:
            raise GoTemplateExecError(f"template: the output is longer than {MAX_OUTPUT_CHARS} characters")
        self.out.append(text)

    def error(self, message: str) -> GoTemplateExecError:
        where = f' executing "" at <{self.at}>:' if self.at else ""
        return GoTemplateExecError(f"template: :{self.line}:{where} {message}")

    def lookup(self, name: str) -> Any:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        raise self.error(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.error(f"undefined variable: {name}")

    # -- walking
    def walk(self, dot: Any, nodes: Sequence[Node]) -> None:
        for node in nodes:
            self.step()
            if isinstance(node, Text):
                self.write(node.text)
            elif isinstance(node, Action):
                self.line = node.line
                value = self.eval_pipe(dot, node.pipe)
                if not node.pipe.decl:
                    self.at = _node_text(node.pipe)
                    try:
                        self.write(go_print(value))
                    except GoValueError as exc:
                        raise self.error(str(exc)) from None
            elif isinstance(node, Branch):
                if node.kind == "range":
                    self.walk_range(dot, node)
                else:
                    self.walk_if_with(dot, node)
            elif isinstance(node, Break):
                raise _Break
            elif isinstance(node, Continue):
                raise _Continue

    def walk_if_with(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            self.line = node.line
            value = self.eval_pipe(dot, node.pipe)
            if truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            self.line = node.line
            value = self.eval_pipe(dot, node.pipe)
            decl = node.pipe.decl
            items: Any
            if value is None:
                items = ()
            elif isinstance(value, bool | float | str | GoStruct):
                self.at = _node_text(node.pipe)
                raise self.error(f"range can't iterate over {go_print(value, False)}")
            elif isinstance(value, int):
                if len(decl) > 1:
                    raise self.error(f"can't use {value} to iterate over more than one variable")
                items = ((i, i) for i in range(max(value, 0)))
            elif isinstance(value, OrderedMap):
                items = list(value.items())
            elif isinstance(value, dict):
                items = [(k, value[k]) for k in sorted(value)]
            else:
                items = list(enumerate(value))
            iterated = False
            for key, elem in items:
                iterated = True
                self.step()
                if decl:
                    if node.pipe.is_assign:
                        if len(decl) == 1:
                            self.set_var(decl[0], elem)
                        else:
                            self.set_var(decl[0], key)
                            self.set_var(decl[1], elem)
                    else:
                        self.vars[mark + len(decl) - 1] = (decl[-1], elem)
                        if len(decl) == 2:
                            self.vars[mark] = (decl[0], key)
                inner = len(self.vars)
                try:
                    self.walk(elem, node.body)
                except _Continue:
                    pass
                except _Break:
                    break
                finally:
                    del self.vars[inner:]
            if not iterated and node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    # -- evaluation
    def eval_pipe(self, dot: Any, pipe: Pipe) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def eval_command(self, dot: Any, cmd: Command, final: Any) -> Any:
        self.step()
        first = cmd.args[0]
        self.line = cmd.line
        self.at = _node_text(first)
        rest = cmd.args[1:]
        if isinstance(first, Identifier):
            return self.call(dot, first.name, rest, final)
        if rest or final is not _NO_FINAL:
            path = (
                first.fields
                if isinstance(first, Chain)
                else first.idents
                if isinstance(first, Field)
                else (first.idents[1:] if isinstance(first, Variable) else ())
            )
            if path:
                raise self.error(f"{path[-1]} is not a method but has arguments")
            raise self.error(f"can't give argument to non-function {_node_text(first)}")
        return self.eval_arg(dot, first)

    def eval_arg(self, dot: Any, node: Arg) -> Any:
        if isinstance(node, Field):
            return self.fields(dot, node.idents)
        if isinstance(node, Variable):
            return self.fields(self.lookup(node.idents[0]), node.idents[1:])
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Nil):
            raise self.error("nil is not a command")
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Chain):
            return self.fields(self.eval_pipe(dot, node.node), node.fields)
        if isinstance(node, Identifier):
            return self.call(dot, node.name, (), _NO_FINAL)
        return self.eval_pipe(dot, node)

    def fields(self, value: Any, idents: Sequence[str]) -> Any:
        for name in idents:
            self.step()
            if value is None:
                return None  # Go: a field of a missing map entry is itself missing
            if isinstance(value, GoStruct):
                if name not in value.fields:
                    raise self.error(f"can't evaluate field {name} in type {value.type_name}")
                value = value.fields[name]
            elif isinstance(value, dict):
                value = value.get(name)
            else:
                raise self.error(f"can't evaluate field {name} in type {type_name(value)}")
        return value

    def call(self, dot: Any, name: str, arg_nodes: Sequence[Arg], final: Any) -> Any:
        if name in ("and", "or"):
            return self.call_and_or(dot, name, arg_nodes, final)
        args = [self.eval_arg(dot, a) for a in arg_nodes]
        if final is not _NO_FINAL:
            args.append(final)
        fn = _FUNCTIONS[name]
        try:
            return fn(args)
        except _CallError as exc:
            raise self.error(f"error calling {name}: {exc}") from None
        except GoValueError as exc:
            raise self.error(f"error calling {name}: {exc}") from None

    def call_and_or(self, dot: Any, name: str, arg_nodes: Sequence[Arg], final: Any) -> Any:
        total = len(arg_nodes) + (final is not _NO_FINAL)
        if total < 1:
            raise self.error(f"wrong number of args for {name}: want at least 1 got 0")
        value: Any = None
        for i in range(total):
            value = self.eval_arg(dot, arg_nodes[i]) if i < len(arg_nodes) else final
            if truth(value) != (name == "and"):
                return value
        return value


class _CallError(Exception):
    pass


def _want(name: str, args: list[Any], n: int) -> None:
    if len(args) != n:
        raise _CallError(f"wrong number of args for {name}: want {n} got {len(args)}")


def _len(args: list[Any]) -> int:
    _want("len", args, 1)
    (value,) = args
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, list | dict):
        return len(value)
    raise _CallError(f"len of type {type_name(value)}")


def _int_index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _CallError(f"cannot index slice/array with type {type_name(value)}")
    return value


def _index(args: list[Any]) -> Any:
    if not args:
        raise _CallError("wrong number of args for index: want at least 1 got 0")
    value = args[0]
    for key in args[1:]:
        if value is None:
            raise _CallError("index of untyped nil")
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list | str):
            i = _int_index(key)
            if isinstance(value, str):
                data = value.encode("utf-8", "surrogatepass")
                if not 0 <= i < len(data):
                    raise _CallError(f"index out of range: {i}")
                value = data[i]
            else:
                if not 0 <= i < len(value):
                    raise _CallError(f"index out of range: {i}")
                value = value[i]
        else:
            raise _CallError(f"can't index item of type {type_name(value)}")
    return value


def _slice(args: list[Any]) -> Any:
    if not args:
        raise _CallError("wrong number of args for slice: want at least 1 got 0")
    value, idx = args[0], [_int_index(x) for x in args[1:]]
    if len(idx) > 3:
        raise _CallError(f"too many slice indexes: {len(idx)}")
    if isinstance(value, str):
        if len(idx) == 3:
            raise _CallError("cannot 3-index slice a string")
        data = value.encode("utf-8", "surrogatepass")
        bounds = _bounds(idx, len(data))
        return data[bounds[0] : bounds[1]].decode("utf-8", "replace")
    if isinstance(value, list):
        bounds = _bounds(idx, len(value))
        return value[bounds[0] : bounds[1]]
    if value is None:
        raise _CallError("slice of untyped nil")
    raise _CallError(f"can't slice item of type {type_name(value)}")


def _bounds(idx: list[int], cap: int) -> tuple[int, int]:
    full = [0, cap, cap]
    for i, x in enumerate(idx):
        if not 0 <= x <= cap:
            raise _CallError(f"index out of range: {x}")
        full[i] = x
    if len(idx) < 2:
        full[1] = cap
    if full[0] > full[1]:
        raise _CallError(f"invalid slice index: {full[0]} > {full[1]}")
    if len(idx) == 3 and full[1] > full[2]:
        raise _CallError(f"invalid slice index: {full[1]} > {full[2]}")
    return full[0], full[1]


def _kind(value: Any) -> str:
    if value is None:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(args: list[Any]) -> bool:
    if len(args) < 2:
        raise _CallError("missing argument for comparison")
    first, k1 = args[0], _kind(args[0])
    for other in args[1:]:
        k2 = _kind(other)
        if k1 != k2:
            if k1 != "invalid" and k2 != "invalid":
                raise _CallError("incompatible types for comparison")
            continue
        if k1 == "invalid":
            return True
        if k1 == "other":
            if isinstance(first, list | dict) or isinstance(other, list | dict):
                raise _CallError(f"non-comparable types {type_name(first)}, {type_name(other)}")
            if first is other:
                return True
            continue
        if first == other:
            return True
    return False


def _ne(args: list[Any]) -> bool:
    _want("ne", args, 2)
    return not _eq(args)


def _ordered(name: str, args: list[Any], op: Callable[[Any, Any], bool]) -> bool:
    _want(name, args, 2)
    a, b = args
    ka, kb = _kind(a), _kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")
    return op(a, b)


def _not(args: list[Any]) -> bool:
    _want("not", args, 1)
    return not truth(args[0])


def _sprint(args: list[Any]) -> str:
    out: list[str] = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_print(arg, False))
    return "".join(out)


def _sprintln(args: list[Any]) -> str:
    return " ".join(go_print(a, False) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _sprintf(args: list[Any]) -> str:
    """fmt.Sprintf for the common verbs (%s %v %d %q %t %f %g %e %x %X %c %%)."""
    if not args or not isinstance(args[0], str):
        raise _CallError("wrong type for value; expected string")
    fmt, values = args[0], args[1:]
    out: list[str] = []
    pos = used = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if used >= len(values):
            out.append(f"%!{verb}(MISSING)")
            continue
        value = values[used]
        used += 1
        out.append(_pad(_format_one(verb, value, prec), flags, width))
    out.append(fmt[pos:])
    if used < len(values):
        extra = ", ".join(f"{type_name(v)}={go_print(v, False)}" for v in values[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(verb: str, value: Any, prec: str | None) -> str:
    bad = f"%!{verb}({type_name(value)}={go_print(value, False)})"
    if verb == "v":
        return go_print(value, False)
    if verb == "s":
        text = value if isinstance(value, str) else go_print(value, False)
        return text[: int(prec)] if prec is not None else text
    if verb == "q":
        return go_json(value) if isinstance(value, str) else bad
    if verb == "t":
        return go_print(value, False) if isinstance(value, bool) else bad
    if verb in "dxXc":
        if isinstance(value, bool) or not isinstance(value, int):
            return bad
        if verb == "d":
            return str(value)
        if verb == "c":
            return chr(value) if 0 <= value <= 0x10FFFF else "\ufffd"
        return format(value, verb)
    if verb in "fFeEgG":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return bad
        p = int(prec) if prec is not None else 6
        if verb in "gG" and prec is None:
            return go_print(float(value), False)
        return format(float(value), f".{p}{verb}")
    return f"%!{verb}({type_name(value)}={go_print(value, False)})"


def _pad(text: str, flags: str, width: str | None) -> str:
    if width is None or len(text) >= int(width):
        return text
    fill = int(width) - len(text)
    if "-" in flags:
        return text + " " * fill
    if "0" in flags and text[:1] in "-+0123456789":
        sign = text[0] if text[0] in "-+" else ""
        return sign + "0" * fill + text[len(sign) :]
    return " " * fill + text


def _json(args: list[Any]) -> str:
    _want("json", args, 1)
    try:
        return go_json(args[0])
    except GoValueError:
        return ""  # Ollama's json ignores the marshalling error


def _date(days: int) -> Callable[[list[Any]], str]:
    def fn(args: list[Any]) -> str:
        if any(not isinstance(a, str) for a in args):
            raise _CallError("wrong type for value; expected string")
        return (datetime.date.today() + datetime.timedelta(days=days)).isoformat()

    return fn


_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}  # fmt: skip


def _ts_type(prop: Any) -> str:
    if not isinstance(prop, GoStruct) or prop.type_name != "api.ToolProperty":
        return "any"
    any_of = prop.fields.get("AnyOf") or []
    if any_of:
        return " | ".join(_ts_type(x) for x in any_of)
    types = prop.fields.get("Type") or PropertyType()
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


def _to_typescript_type(args: list[Any]) -> str:
    _want("toTypeScriptType", args, 1)
    return _ts_type(args[0])


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "not": _not,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": _ne,
    "lt": lambda a: _ordered("lt", a, lambda x, y: x < y),
    "le": lambda a: _ordered("le", a, lambda x, y: x <= y),
    "gt": lambda a: _ordered("gt", a, lambda x, y: x > y),
    "ge": lambda a: _ordered("ge", a, lambda x, y: x >= y),
    "print": _sprint,
    "printf": _sprintf,
    "println": _sprintln,
    "json": _json,
    "currentDate": _date(0),
    "yesterdayDate": _date(-1),
    "toTypeScriptType": _to_typescript_type,
}


def execute(tree: Tree, data: Any, *, max_steps: int = DEFAULT_MAX_STEPS) -> str:
    """Render `tree` with `data` as dot (and `$`)."""
    state = _State(data, max_steps)
    try:
        state.walk(data, tree.nodes)
    except (_Break, _Continue):  # the parser only allows these inside range
        raise state.error("break or continue outside range") from None
    except RecursionError:
        raise state.error("the template nests too deeply") from None
    return "".join(state.out)
