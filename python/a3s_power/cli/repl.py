"""The interactive session of `a3s-power run MODEL` (no prompt, a terminal): Ollama's REPL.

`>>> ` prompts, `... ` continues a `\"\"\"` multi-line message; slash commands `/set parameter`,
`/set system`, `/set verbose|quiet`, `/clear`, `/show info|system|parameters`, `/?`, `/bye`.
The conversation is kept and re-rendered each turn; the engine reuses the cached prefix, so a turn
costs only its new tokens. `Session` is the state machine (no I/O); `run_session` is the loop.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from a3s_power.errors import PowerError
from a3s_power.runtime import Completion, GenerationOptions, LoadedModel, generate_sync
from a3s_power.runtime.options import merge_options
from a3s_power.store.errors import InvalidModelfile
from a3s_power.store.parameters import parse_parameter_values

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

Use \"\"\" to begin a multi-line message."""
SET_HELP = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats"""


@dataclass
class Session:
    """What the user typed so far and what the conversation is; `feed` says what to do next."""

    options: dict[str, Any] = field(default_factory=dict)  # Ollama option names → values
    system: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    verbose: bool = False
    pending: list[str] | None = None  # lines of an open \"\"\" message

    @property
    def prompt(self) -> str:
        return "... " if self.pending is not None else ">>> "

    def feed(self, line: str) -> tuple[str, str]:
        """One input line → (action, text). Actions: "send" (text = the message), "say" (text to
        print), "exit", "none"."""
        if self.pending is not None:
            if line.rstrip().endswith('"""'):
                self.pending.append(line.rstrip()[:-3])
                text, self.pending = "\n".join(self.pending), None
                return ("send", text) if text.strip() else ("none", "")
            self.pending.append(line)
            return "none", ""
        stripped = line.strip()
        if stripped.startswith('"""'):
            rest = stripped[3:]
            if rest.endswith('"""') and len(rest) >= 3:
                return "send", rest[:-3]
            self.pending = [rest] if rest else []
            return "none", ""
        if stripped in ("/bye", "/exit"):
            return "exit", ""
        if stripped.startswith("/"):
            return "say", self._command(stripped)
        if not stripped:
            return "none", ""
        return "send", line

    def _command(self, command: str) -> str:
        words = command.split()
        head, args = words[0], words[1:]
        if head in ("/?", "/help"):
            return SET_HELP if args[:1] == ["set"] else HELP
        if head == "/clear":
            self.messages.clear()
            return "Cleared session context"
        if head == "/set":
            return self._set(args, command)
        if head == "/show":
            return self._show(args)
        return f"Unknown command '{head}'. Type /? for help"

    def _set(self, args: list[str], command: str) -> str:
        if not args:
            return SET_HELP
        if args[0] == "verbose":
            self.verbose = True
            return "Set 'verbose' mode."
        if args[0] == "quiet":
            self.verbose = False
            return "Set 'quiet' mode."
        if args[0] == "system":
            self.system = command.split("system", 1)[1].strip().strip('"')
            return "Set system message."
        if args[0] == "parameter" and len(args) >= 3:
            name, values = args[1], args[2:]
            try:
                value = parse_parameter_values(name, values)
                merge_options(self.options, {name: value})  # type check as a request would be
            except (InvalidModelfile, PowerError) as exc:
                return f"Couldn't set parameter: {exc}"
            self.options[name] = value
            return f"Set parameter '{name}' to '{', '.join(values)}'"
        return SET_HELP

    def _show(self, args: list[str]) -> str:
        what = args[0] if args else ""
        if what == "system":
            return self.system or "No system message was specified for this model."
        if what == "parameters":
            if not self.options:
                return "No parameters were specified for this model."
            return "\n".join(f"{k:<30} {v}" for k, v in sorted(self.options.items()))
        return "Available Commands:\n  /show info\n  /show system\n  /show parameters"

    def conversation(self, user_text: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self.messages, {"role": "user", "content": user_text}]


def run_session(
    loaded: LoadedModel,
    base: GenerationOptions,
    *,
    read: Callable[[str], str] = input,
    out: TextIO = sys.stdout,
    stats: Callable[[Completion], None] | None = None,
    session: Session | None = None,
) -> None:
    session = session or Session()
    while True:
        try:
            line = read(session.prompt)
        except EOFError:
            out.write("\n")
            return
        except KeyboardInterrupt:
            session.pending = None
            out.write("\nUse Ctrl + d or /bye to exit.\n")
            continue
        action, text = session.feed(line)
        if action == "exit":
            return
        if action == "say":
            out.write(text + "\n")
        if action != "send":
            continue
        _turn(loaded, base, session, text, out, stats)


def _turn(
    loaded: LoadedModel,
    base: GenerationOptions,
    session: Session,
    text: str,
    out: TextIO,
    stats: Callable[[Completion], None] | None,
) -> None:
    options, _ = merge_options(_as_options(base), session.options)
    rendered = loaded.render_chat(session.conversation(text))
    tokens = loaded.tokenize(rendered.prompt, add_special=True, parse_special=True)
    options.stop = [*options.stop, *rendered.additional_stops]
    reply: list[str] = []
    final: Completion | None = None
    stream = generate_sync(loaded, tokens, options)
    try:
        for item in stream:
            if isinstance(item, Completion):
                final = item
            else:
                reply.append(item.text)
                out.write(item.text)
                out.flush()
    except KeyboardInterrupt:
        stream.close()  # cancels the engine request; the partial reply is kept
    except PowerError as exc:
        out.write(f"\nError: {exc}\n")
        return
    out.write("\n\n")
    session.messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "".join(reply)}]
    if session.verbose and final is not None and stats is not None:
        stats(final)


def _as_options(options: GenerationOptions) -> dict[str, Any]:
    """The command-line sampling flags as Ollama options (the session's /set values go on top)."""
    return {"temperature": options.temperature, "seed": options.seed, "num_predict": options.num_predict}
