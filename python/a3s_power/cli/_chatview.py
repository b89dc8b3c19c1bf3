"""How `run` shows a streamed reply, as Ollama's CLI does (`cmd/cmd.go` generate / chat).

Thinking goes out first between `Thinking...` and `...done thinking.` (grey on a terminal,
hidden with --hidethinking), then the answer; on a terminal long lines are wrapped at word
boundaries (unless --nowordwrap); tool calls the model makes are reported, not run; --verbose
prints Ollama's timing summary on stderr.
"""

from __future__ import annotations

import shutil
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

GREY = "\x1b[38;5;245m"
BOLD = "\x1b[1m"
DEFAULT = "\x1b[0m"


def go_duration(ns: int) -> str:
    """Go's time.Duration String(): 1.5s, 12.345ms, 900µs, 2m3.5s, 1h0m0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1_000_000)}ms"
    seconds = ns / 1e9
    hours, rest = divmod(int(ns // 1_000_000_000), 3600)
    minutes, whole = divmod(rest, 60)
    frac = _trim(whole + (ns % 1_000_000_000) / 1e9)
    if hours:
        return f"{sign}{hours}h{minutes}m{frac}s"
    if minutes:
        return f"{sign}{minutes}m{frac}s"
    return f"{sign}{_trim(seconds)}s"


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def summary(final: dict[str, Any], err: TextIO | None = None) -> None:
    """Ollama's Metrics.Summary on stderr (each line only when its value is non-zero)."""
    err = err or sys.stderr
    lines = []
    if final.get("total_duration"):
        lines.append(f"total duration:       {go_duration(int(final['total_duration']))}")
    if final.get("load_duration"):
        lines.append(f"load duration:        {go_duration(int(final['load_duration']))}")
    prompt_count = int(final.get("prompt_eval_count") or 0)
    prompt_ns = int(final.get("prompt_eval_duration") or 0)
    if prompt_count:
        lines.append(f"prompt eval count:    {prompt_count} token(s)")
    if prompt_ns:
        lines.append(f"prompt eval duration: {go_duration(prompt_ns)}")
        lines.append(f"prompt eval rate:     {prompt_count / (prompt_ns / 1e9):.2f} tokens/s")
    count, eval_ns = int(final.get("eval_count") or 0), int(final.get("eval_duration") or 0)
    if count:
        lines.append(f"eval count:           {count} token(s)")
    if eval_ns:
        lines.append(f"eval duration:        {go_duration(eval_ns)}")
        lines.append(f"eval rate:            {count / (eval_ns / 1e9):.2f} tokens/s")
    err.write("".join(line + "\n" for line in lines))
    err.flush()


def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


@dataclass
class Display:
    """Writes a reply's thinking and content as they stream in."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    word_wrap: bool = True
    hide_thinking: bool = False
    plain: bool = False  # no colours (stdout is not a terminal)
    line_length: int = 0
    word: str = ""
    thinking_open: bool = False
    thinking_seen: str = ""
    wrote: bool = False

    def __post_init__(self) -> None:
        self.width = shutil.get_terminal_size((80, 24)).columns

    def _text(self, text: str) -> None:
        """Ollama's displayResponse: wrap at word boundaries 5 columns before the edge."""
        if not text:
            return
        self.wrote = True
        if not self.word_wrap or self.width < 10:
            self.out.write(text)
            self.out.flush()
            return
        for ch in text:
            if self.line_length + 1 > self.width - 5:
                if sum(map(_width, self.word)) > self.width - 10:
                    self.out.write(self.word + ch)
                    self.word, self.line_length = "", 0
                    continue
                back = sum(map(_width, self.word))
                if back:
                    self.out.write(f"\x1b[{back}D")
                self.out.write("\x1b[K\n" + self.word + ch)
                self.line_length = back + _width(ch)
                continue
            self.out.write(ch)
            self.line_length += _width(ch)
            if _width(ch) >= 2 or ch in " \t":
                self.word = ""
            elif ch in "\r\n":
                self.line_length, self.word = 0, ""
            else:
                self.word += ch
        self.out.flush()

    def feed(self, thinking: str, content: str, tool_calls: list[dict[str, Any]] | None = None) -> None:
        if thinking and not self.hide_thinking:
            if not self.thinking_open:
                opening = "Thinking...\n"
                self.out.write(opening if self.plain else GREY + BOLD + opening + DEFAULT + GREY)
                self.thinking_open = True
            self.thinking_seen += thinking
            self._text(thinking)
        if self.thinking_open and (content or tool_calls):
            if not self.thinking_seen.endswith("\n"):
                self.out.write("\n")
            closing = "...done thinking.\n\n"
            self.out.write(closing if self.plain else GREY + BOLD + closing + DEFAULT)
            self.thinking_open = False
            self.line_length, self.word = 0, ""
        self._text(content)
        if tool_calls:
            self.out.write(render_tool_calls(tool_calls, self.plain))
            self.wrote = True
        self.out.flush()


def render_tool_calls(calls: list[dict[str, Any]], plain: bool) -> str:
    """The CLI registers no tools, so every call is reported as Ollama reports it."""
    lines = []
    for call in calls:
        function = call.get("function") or {}
        args = orjson.dumps(function.get("arguments") or {}).decode()
        name = str(function.get("name", ""))
        if plain:
            lines.append(f"  Model called a non-existent function '{name}()' with arguments: {args}")
        else:
            lines.append(
                f"  Model called a non-existent function '{DEFAULT}{name}{GREY}{BOLD}()' with arguments: "
                f"{DEFAULT}{args}{GREY}{BOLD}"
            )
    text = "\n".join(lines)
    return text if plain else GREY + BOLD + text + DEFAULT


@dataclass
class Reply:
    content: str = ""
    thinking: str = ""
    final: dict[str, Any] = field(default_factory=dict)
    done: bool = False


def show_stream(events: Iterable[dict[str, Any]], display: Display, *, chat: bool) -> Reply:
    """Draw an /api/generate or /api/chat stream; the whole reply and its final object."""
    reply = Reply()
    iterator: Iterator[dict[str, Any]] = iter(events)
    try:
        for event in iterator:
            if chat:
                message = event.get("message") or {}
                thinking, content = str(message.get("thinking") or ""), str(message.get("content") or "")
                calls = message.get("tool_calls")
            else:
                thinking, content = str(event.get("thinking") or ""), str(event.get("response") or "")
                calls = event.get("tool_calls")
            reply.thinking += thinking
            reply.content += content
            display.feed(thinking, content, calls)
            if event.get("done"):
                reply.final, reply.done = event, True
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # an interrupted reply closes the response: the server cancels the request
    return reply
