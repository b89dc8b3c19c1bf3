"""The interactive session of `a3s-power run MODEL` (a terminal, no prompt): Ollama's REPL
(`cmd/interactive.go`).

`>>> ` prompts, `... ` continues a `\"\"\"` multi-line message (or `/set system \"\"\"…\"\"\"`);
`/set parameter|system|history|nohistory|wordwrap|nowordwrap|format json|noformat|verbose|quiet|
think [level]|nothink`, `/show info|license|modelfile|parameters|system|template`, `/load <model>`,
`/save <model>`, `/clear`, `/list`, `/?`, `/bye`. Each turn is one `/api/chat` request carrying
the whole conversation (the server's engine reuses the cached prefix). History goes to
~/.ollama/history unless OLLAMA_NOHISTORY is set.

`Session` is the state machine (no I/O); `run_session` is the loop around a client.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from a3s_power.cli._chatview import Display, show_stream, summary
from a3s_power.cli._client import Client, ClientError
from a3s_power.errors import PowerError
from a3s_power.runtime.options import merge_options
from a3s_power.store.errors import InvalidModelfile
from a3s_power.store.parameters import parse_parameter_values

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""
SET_HELP = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking
"""
SHOW_HELP = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""
SHORTCUTS_HELP = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit a3s-power (/bye)
"""
PARAMETERS_HELP = """Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters
"""


def history_path(env: Mapping[str, str] | None = None) -> Path:
    """Ollama's history file: ~/.ollama/history."""
    env = os.environ if env is None else env
    return Path(env.get("HOME") or Path.home()) / ".ollama" / "history"


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@dataclass
class Session:
    """The conversation and the session's settings; `feed` says what to do with a typed line."""

    model: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # Ollama option names → values
    system: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)  # sent with every turn
    loaded_messages: list[dict[str, Any]] = field(default_factory=list)  # the model's MESSAGEs
    parent_model: str = ""
    capabilities: list[str] = field(default_factory=list)
    verbose: bool = False
    word_wrap: bool = True
    history: bool = True
    think: bool | str | None = None
    think_explicit: bool = False
    format: str = ""
    pending: list[str] | None = None  # lines of an open \"\"\" block
    pending_system: bool = False  # … which is a /set system value

    @property
    def prompt(self) -> str:
        return "... " if self.pending is not None else ">>> "

    def feed(self, line: str) -> tuple[str, str]:
        """One input line → (action, text). Actions: "send" (text = the message), "say" (text to
        print), "exit", "none", and the ones needing the server: "show" (text = what), "load" /
        "save" (text = the model), "list"."""
        if self.pending is not None:
            before, closed = (line[:-3], True) if line.endswith('"""') else (line, False)
            self.pending.append(before)
            if not closed:
                return "none", ""
            text, self.pending = "\n".join(self.pending), None
            if self.pending_system:
                self.pending_system = False
                return "say", self._set_system(text)
            return ("send", text) if text.strip() else ("none", "")
        if line.startswith('"""'):
            rest = line[3:]
            if rest.endswith('"""') and len(rest) >= 3:
                return "send", rest[:-3]
            self.pending = [rest]
            return "none", ""
        stripped = line.strip()
        if stripped.startswith(("/exit", "/bye")):
            return "exit", ""
        if stripped.startswith("/"):
            return self._command(stripped)
        if not stripped:
            return "none", ""
        return "send", line

    def _command(self, command: str) -> tuple[str, str]:
        words = command.split()
        head, args = words[0], words[1:]
        if head in ("/?", "/help"):
            topic = args[0] if args else ""
            helps = {"set": SET_HELP, "/set": SET_HELP, "show": SHOW_HELP, "/show": SHOW_HELP,
                     "shortcut": SHORTCUTS_HELP, "shortcuts": SHORTCUTS_HELP}  # fmt: skip
            return "say", helps.get(topic, HELP if not topic else "")
        if head == "/clear":
            self.messages = [{"role": "system", "content": self.system}] if self.system else []
            return "say", "Cleared session context"
        if head == "/list":
            return "list", ""
        if head in ("/load", "/save"):
            if len(args) != 1:
                return "say", f"Usage:\n  {head} <modelname>"
            return head[1:], args[0]
        if head == "/set":
            return self._set(args, command)
        if head == "/show":
            return ("show", args[0]) if args else ("say", SHOW_HELP)
        return "say", f"Unknown command '{head}'. Type /? for help"

    def _set(self, args: list[str], command: str) -> tuple[str, str]:
        if not args:
            return "say", SET_HELP
        what = args[0]
        if what in ("history", "nohistory"):
            self.history = what == "history"
            return "none", ""
        if what in ("wordwrap", "nowordwrap"):
            self.word_wrap = what == "wordwrap"
            return "say", f"Set '{what}' mode."
        if what in ("verbose", "quiet"):
            self.verbose = what == "verbose"
            return "say", f"Set '{what}' mode."
        if what == "think":
            self.think, self.think_explicit = (args[1] if len(args) > 1 else True), True
            said = f"Set 'think' mode to '{args[1]}'." if len(args) > 1 else "Set 'think' mode."
            return "say", self._think_warning() + said
        if what == "nothink":
            self.think, self.think_explicit = False, True
            return "say", self._think_warning() + "Set 'nothink' mode."
        if what == "format":
            if len(args) < 2 or args[1] != "json":
                return "say", "Invalid or missing format. For 'json' mode use '/set format json'"
            self.format = "json"
            return "say", "Set format to 'json' mode."
        if what == "noformat":
            self.format = ""
            return "say", "Disabled format."
        if what == "parameter":
            if len(args) < 3:
                return "say", PARAMETERS_HELP
            name, values = args[1], args[2:]
            try:
                value = parse_parameter_values(name, values)
                merge_options({}, {name: value})  # type-checked as a request's option would be
            except (InvalidModelfile, PowerError) as exc:
                return "say", f"Couldn't set parameter: {_go_quote(str(exc))}"
            self.options[name] = value
            return "say", f"Set parameter '{name}' to '{', '.join(values)}'"
        if what == "system":
            if len(args) < 2:
                return "say", SET_HELP
            value = command.split(None, 2)[2]
            if value.startswith('"""'):
                value = value[3:]
                if not (value.endswith('"""') and len(value) >= 3):
                    self.pending, self.pending_system = [value], True
                    return "none", ""
                value = value[:-3]
            return "say", self._set_system(value)
        return "say", f"Unknown command '/set {what}'. Type /? for help"

    def _think_warning(self) -> str:
        if self.capabilities and "thinking" not in self.capabilities:
            return f"warning: model {_go_quote(self.model)} does not support thinking output\n"
        return ""

    def _set_system(self, text: str) -> str:
        """Ollama's /set system: replace a system message that is last, else append one."""
        self.system = text
        message = {"role": "system", "content": text}
        if self.messages and self.messages[-1]["role"] == "system":
            self.messages[-1] = message
        else:
            self.messages.append(message)
        return "Set system message."

    def conversation(self, user_text: str, images: list[str] | None = None) -> list[dict[str, Any]]:
        message: dict[str, Any] = {"role": "user", "content": user_text}
        if images:
            message["images"] = images
        return [*self.messages, message]

    def chat_request(
        self, user_text: str, keep_alive: str | None = None, images: list[str] | None = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "messages": self.conversation(user_text, images),
                                   "options": dict(self.options), "stream": True}  # fmt: skip
        if self.format:
            request["format"] = self.format
        if self.think is not None:
            request["think"] = self.think
        if keep_alive is not None:
            request["keep_alive"] = keep_alive
        return request

    def create_request(self, name: str) -> dict[str, Any]:
        """/save: Ollama's NewCreateRequest (from the parent model, the session's system,
        parameters and messages, the model's own MESSAGEs first)."""
        request: dict[str, Any] = {"model": name, "from": self.parent_model or self.model, "stream": False}
        if self.system:
            request["system"] = self.system
        if self.options:
            request["parameters"] = dict(self.options)
        messages = [*self.loaded_messages, *self.messages]
        if messages:
            request["messages"] = messages
        return request

    def apply_show(self, info: Mapping[str, Any]) -> None:
        self.parent_model = str((info.get("details") or {}).get("parent_model") or "")
        self.loaded_messages = [dict(m) for m in info.get("messages") or []]
        self.capabilities = [str(c) for c in info.get("capabilities") or []]
        if not self.think_explicit:
            self.think = True if "thinking" in self.capabilities else None

    def show_text(self, what: str, info: Mapping[str, Any]) -> str:
        """/show <what> from the model's /api/show answer."""
        if what == "info":
            from a3s_power.cli._showinfo import render_show

            return render_show(info, False).rstrip("\n")
        if what == "license":
            return str(info.get("license") or "") or "No license was specified for this model."
        if what == "modelfile":
            return str(info.get("modelfile") or "")
        if what == "parameters":
            lines = ["Model defined parameters:"]
            parameters = str(info.get("parameters") or "")
            if parameters:
                lines += [f"  {line}" for line in parameters.split("\n")]
            else:
                lines.append("  No additional parameters were specified for this model.")
            lines.append("")
            if self.options:
                lines.append("User defined parameters:")
                lines += [f"  {k:<30} {v}" for k, v in self.options.items()]
                lines.append("")
            return "\n".join(lines)
        if what == "system":
            system = self.system or str(info.get("system") or "")
            return system + "\n" if system else "No system message was specified for this model."
        if what == "template":
            return str(info.get("template") or "") or "No prompt template was specified for this model."
        return f"Unknown command '/show {what}'. Type /? for help"


class History:
    """The readline history in ~/.ollama/history (a terminal only; off with OLLAMA_NOHISTORY)."""

    def __init__(self, enabled: bool, path: Path | None = None) -> None:
        self.path = path or history_path()
        self.readline: Any = None
        if not enabled:
            return
        try:
            import readline
        except ImportError:  # no GNU readline on this platform
            return
        self.readline = readline
        readline.set_history_length(1000)
        with contextlib.suppress(OSError):
            readline.read_history_file(self.path)

    def add(self, line: str, session: Session) -> None:
        if self.readline is None:
            return
        if not session.history:
            count = self.readline.get_current_history_length()
            if count:
                self.readline.remove_history_item(count - 1)  # input() recorded it; Ollama would not
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.readline.write_history_file(self.path)
        except OSError:
            pass


def run_session(
    client: Client,
    session: Session,
    *,
    read: Callable[[str], str] = input,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    keep_alive: str | None = None,
    hide_thinking: bool = False,
    history: History | None = None,
) -> None:
    """The loop: read a line, act on it; returns on /bye or end of input."""
    while True:
        try:
            line = read(session.prompt)
        except EOFError:
            out.write("\n")
            return
        except KeyboardInterrupt:
            if session.pending is None:
                out.write("\nUse Ctrl + d or /bye to exit.\n")
            session.pending, session.pending_system = None, False
            continue
        if history is not None:
            history.add(line, session)
        action, text = session.feed(line)
        if action == "exit":
            return
        if action == "say":
            if text:
                out.write(text + "\n")
        elif action == "send":
            _turn(client, session, text, out, err, keep_alive, hide_thinking)
        elif action in ("show", "load", "save", "list"):
            _server_command(client, session, action, text, out)


def _server_command(client: Client, session: Session, action: str, text: str, out: TextIO) -> None:
    if action == "show":
        body: dict[str, Any] = {"model": session.model, "options": session.options}
        if session.system:
            body["system"] = session.system
        try:
            info = client.call("POST", "/api/show", body) or {}
        except ClientError:
            out.write("error: couldn't get model\n")
            raise
        out.write(session.show_text(text, info) + "\n")
    elif action == "list":
        from a3s_power.cli._format import human_bytes, human_time, parse_time, render_table

        reply = client.call("GET", "/api/tags") or {}
        rows = [
            [str(m.get("name", "")), str(m.get("digest", ""))[:12], human_bytes(int(m.get("size") or 0)),
             human_time(parse_time(m.get("modified_at")), "Never")]
            for m in reply.get("models") or []
        ]  # fmt: skip
        out.write(render_table(rows, header=["NAME", "ID", "SIZE", "MODIFIED"]))
    elif action == "save":
        try:
            client.call("POST", "/api/create", session.create_request(text))
        except ClientError as exc:
            if "invalid model name" in str(exc).lower():
                out.write(f"error: The model name '{text}' is invalid\n")
                return
            raise
        out.write(f"Created new model '{text}'\n")
    elif action == "load":
        out.write(f"Loading model '{text}'\n")
        try:
            info = client.call("POST", "/api/show", {"model": text}) or {}
        except ClientError as exc:
            if "not found" in str(exc):
                out.write(f"Couldn't find model '{text}'\n")
                return
            raise
        saved = (session.model, session.messages, session.loaded_messages, session.parent_model,
                 session.capabilities, session.think)  # fmt: skip
        session.model, session.messages = text, []
        session.apply_show(info)
        load: dict[str, Any] = {"model": text}
        if session.think is not None:
            load["think"] = session.think
        try:
            client.call("POST", "/api/generate", load)
        except ClientError as exc:
            (session.model, session.messages, session.loaded_messages, session.parent_model,
             session.capabilities, session.think) = saved  # fmt: skip
            if "not found" in str(exc):
                out.write(f"Couldn't find model '{text}'\n")
            elif "does not support thinking" in str(exc):
                out.write(f"error: {exc}\n")
            else:
                raise


def _turn(
    client: Client,
    session: Session,
    text: str,
    out: TextIO,
    err: TextIO,
    keep_alive: str | None,
    hide_thinking: bool,
) -> None:
    images: list[str] = []
    if "vision" in session.capabilities:
        from a3s_power.cli._images import extract_images

        text, images = extract_images(text, out)
    request = session.chat_request(text, keep_alive, images)
    session.messages.append({"role": "user", "content": text, **({"images": images} if images else {})})
    display = Display(out=out, word_wrap=session.word_wrap and out.isatty(), hide_thinking=hide_thinking,
                      plain=not out.isatty())  # fmt: skip
    try:
        reply = show_stream(client.stream("/api/chat", request), display, chat=True)
    except KeyboardInterrupt:
        out.write("\n")
        return  # as Ollama: the user's message stays, the interrupted reply does not
    except ClientError as exc:
        if "does not support thinking" in str(exc) or "invalid think value" in str(exc):
            out.write(f"error: {exc}\n")
            return
        raise
    out.write("\n\n")
    assistant: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.thinking:
        assistant["thinking"] = reply.thinking
    session.messages.append(assistant)
    if session.verbose and reply.final:
        summary(reply.final, err)
