"""Modelfile parser and serialiser, a transcription of Ollama's parser/parser.go state machine.

`parse_modelfile` gives the raw commands (with their starting line numbers); `Modelfile.to_request`
turns them into the structured create request, checking parameters, roles and REQUIRES.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum, auto
from pathlib import Path
from typing import Any

from a3s_power.store.errors import InvalidModelfile
from a3s_power.store.parameters import DEPRECATED_PARAMETERS, parse_parameter_values

COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
            "parameter", "message", "requires")  # fmt: skip
MESSAGE_ROLES = ("system", "user", "assistant")
_QUOTED_COMMANDS = ("license", "template", "system", "adapter", "draft", "renderer", "parser", "requires")
ERR_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", "renderer", '
    '"parser", "parameter", "message", or "requires"'
)
ERR_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
ERR_MISSING_FROM = "no FROM line"
ERR_REQUIRES = "requires must be a valid semver (e.g. 0.14.0)"
_SEMVER_RE = re.compile(r"^v?\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


class _State(Enum):
    NIL = auto()
    NAME = auto()
    VALUE = auto()
    PARAMETER = auto()
    MESSAGE = auto()
    COMMENT = auto()


@dataclass(slots=True)
class Command:
    """`name` is Ollama's: `model` for FROM, the parameter name for PARAMETER, else the lowercase keyword."""

    name: str
    args: str
    line: int = 0
    is_parameter: bool = False

    def __str__(self) -> str:
        if self.name == "model":
            return f"FROM {self.args}"
        if self.name in _QUOTED_COMMANDS:
            return f"{self.name.upper()} {quote(self.args)}"
        if self.name == "message":
            role, _, content = self.args.partition(": ")
            return f"MESSAGE {role} {quote(content)}"
        return f"PARAMETER {self.name} {quote(self.args)}"


def quote(value: str) -> str:
    if "\n" in value or value.startswith(" ") or value.endswith(" "):
        if '"' in value:
            return f'"""{value}"""'
        return f'"{value}"'
    return value


def _unquote(value: str) -> tuple[str, bool]:
    if value.startswith('"""'):
        if len(value) >= 6 and value.endswith('"""'):
            return value[3:-3], True
        return "", False
    if value.startswith('"'):
        if len(value) >= 2 and value.endswith('"'):
            return value[1:-1], True
        return "", False
    return value, True


def _is_space(ch: str) -> bool:
    return ch in " \t"


def _is_newline(ch: str) -> bool:
    return ch in "\r\n"


def _is_alpha(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _is_printable(ch: str) -> bool:
    return ch.isprintable() or ch == " "


@dataclass(slots=True)
class Modelfile:
    commands: list[Command] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(f"{command}\n" for command in self.commands)

    def to_text(self) -> str:
        return str(self)

    def to_request(self, base_dir: Path | str | None = None) -> ModelfileRequest:
        return build_request(self, Path(base_dir) if base_dir is not None else Path.cwd())


def parse_modelfile(text: str | bytes) -> Modelfile:
    """Parse Modelfile text. Errors are InvalidModelfile with Ollama's message and the line number."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidModelfile(f"invalid UTF-8 at byte {exc.start}") from exc
    text = text.removeprefix("\ufeff")
    commands: list[Command] = []
    state = _State.NIL
    line = 1
    start_line = 1
    buf: list[str] = []
    name = ""
    role = ""

    for ch in text:
        if _is_newline(ch):
            line += 1
        nxt, keep, err = _next_state(ch, state)
        if err == "eof":
            raise InvalidModelfile("unexpected EOF: " + "".join(buf), start_line)
        if err:
            raise InvalidModelfile(err, line)
        if nxt != state:
            if state == _State.NAME:
                word = "".join(buf)
                if word.lower() not in COMMANDS:
                    raise InvalidModelfile(ERR_INVALID_COMMAND, line)
                lowered = word.lower()
                if lowered == "from":
                    name = "model"
                elif lowered == "parameter":
                    nxt = _State.PARAMETER
                    name = ""
                elif lowered == "message":
                    nxt = _State.MESSAGE
                    name = "message"
                else:
                    name = lowered
            elif state == _State.PARAMETER:
                name = "".join(buf)
            elif state == _State.MESSAGE:
                role = "".join(buf)
                if role not in MESSAGE_ROLES:
                    raise InvalidModelfile(ERR_INVALID_ROLE, line)
            elif state == _State.VALUE:
                value, ok = _unquote("".join(buf).strip(" \t\r\n"))
                if not ok or _is_space(ch):
                    buf.append(ch)
                    continue
                if role:
                    value = f"{role}: {value}"
                    role = ""
                commands.append(Command(name, value, start_line, is_parameter=_is_param(name)))
            buf = []
            if nxt == _State.NAME:
                start_line = line
            state = nxt
        if keep and _is_printable(ch):
            buf.append(ch)

    if state == _State.VALUE:
        value, ok = _unquote("".join(buf).strip(" \t\r\n"))
        if not ok:
            raise InvalidModelfile("unexpected EOF", start_line)
        if role:
            value = f"{role}: {value}"
        commands.append(Command(name, value, start_line, is_parameter=_is_param(name)))
    elif state not in (_State.NIL, _State.COMMENT):
        raise InvalidModelfile("unexpected EOF", start_line)

    if not any(c.name == "model" for c in commands):
        raise InvalidModelfile(ERR_MISSING_FROM)
    return Modelfile(commands)


def _is_param(name: str) -> bool:
    return name not in COMMANDS and name != "model"


def _next_state(ch: str, state: _State) -> tuple[_State, bool, str]:
    """(next state, whether `ch` goes into the buffer, error) — parseRuneForState."""
    if state == _State.NIL:
        if ch == "#":
            return _State.COMMENT, False, ""
        if _is_space(ch) or _is_newline(ch):
            return _State.NIL, False, ""
        return _State.NAME, True, ""
    if state == _State.NAME:
        if _is_alpha(ch):
            return _State.NAME, True, ""
        if _is_space(ch):
            return _State.VALUE, False, ""
        return _State.NIL, False, ERR_INVALID_COMMAND
    if state == _State.VALUE:
        if _is_newline(ch) or _is_space(ch):
            return _State.NIL, True, ""
        return _State.VALUE, True, ""
    if state == _State.PARAMETER:
        if _is_alpha(ch) or ch.isdigit() or ch == "_":
            return _State.PARAMETER, True, ""
        if _is_space(ch):
            return _State.VALUE, False, ""
        return _State.NIL, False, "eof"
    if state == _State.MESSAGE:
        if _is_alpha(ch):
            return _State.MESSAGE, True, ""
        if _is_space(ch):
            return _State.VALUE, False, ""
        return _State.NIL, False, "eof"
    if _is_newline(ch):
        return _State.NIL, False, ""
    return _State.COMMENT, False, ""


@dataclass(slots=True)
class ModelfileRequest:
    """The structured create request a Modelfile turns into (Ollama's CreateRequest).

    `from_` is a model name; `files`/`adapters` map a file name to a local path the caller must stage
    (import as a blob) before calling create — which `create_from_modelfile` does.
    """

    from_: str = ""
    files: dict[str, Path] = field(default_factory=dict)
    adapters: dict[str, Path] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    license: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    draft: str = ""
    warnings: list[str] = field(default_factory=list)


def build_request(modelfile: Modelfile, base_dir: Path) -> ModelfileRequest:
    request = ModelfileRequest()
    raw_params: dict[str, list[str]] = {}
    param_lines: dict[str, int] = {}
    for command in modelfile.commands:
        if command.name == "model":
            path = _expand_path(command.args, base_dir)
            if path is not None and path.exists():
                for file in _model_files(path):
                    request.files[file.name] = file
            elif request.from_ and not request.files:
                raise InvalidModelfile("only one FROM model name is supported", command.line)
            else:
                request.from_ = command.args
        elif command.name == "adapter":
            path = _expand_path(command.args, base_dir)
            if path is None or not path.exists():
                raise InvalidModelfile(f"adapter file not found: {command.args}", command.line)
            for file in _model_files(path):
                request.adapters[file.name] = file
        elif command.name == "template":
            request.template = command.args
        elif command.name == "system":
            request.system = command.args
        elif command.name == "license":
            request.license.append(command.args)
        elif command.name == "message":
            role, _, content = command.args.partition(": ")
            request.messages.append({"role": role, "content": content})
        elif command.name == "renderer":
            request.renderer = command.args
        elif command.name == "parser":
            request.parser = command.args
        elif command.name == "draft":
            request.draft = command.args
        elif command.name == "requires":
            if not _SEMVER_RE.match(command.args.strip()):
                raise InvalidModelfile(ERR_REQUIRES, command.line)
            request.requires = command.args.strip()
        else:
            if command.name in DEPRECATED_PARAMETERS:
                request.warnings.append(f"parameter {command.name!r} is deprecated")
                continue
            raw_params.setdefault(command.name, []).append(command.args)
            param_lines.setdefault(command.name, command.line)
    for name, values in raw_params.items():
        request.parameters[name] = parse_parameter_values(name, values, param_lines[name])
    return request


def _expand_path(value: str, base_dir: Path) -> Path | None:
    value = value.strip()
    if not value:
        return None
    if value.startswith("~"):
        return Path(os.path.expanduser(value))
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def _model_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(p for p in path.glob("*.gguf") if p.is_file())
    if not found:
        raise InvalidModelfile(f"no GGUF model files found in {path} (safetensors import is not supported)")
    return found
