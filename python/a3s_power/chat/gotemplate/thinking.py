"""Thinking in replies to prompts a Go template rendered (Ollama's `thinking/` package, re-implemented).

- `infer_thinking_tags` (in `gotemplate.ollama`: the store needs it without the runtime): the
  tags around a reasoning trace, read off the template as Ollama does: a `.Thinking` printed
  (not merely tested) inside a `range` over `.Messages`; the nearest enclosing list's first and
  last text nodes, trimmed, are the opening and closing tags. A model whose template yields both
  has the `thinking` capability.
- `ThinkingParser`: splits a streamed reply into thinking and content with those tags, as
  Ollama's `thinking.Parser`: leading whitespace is skipped; a reply that starts with anything but
  the opening tag has no thinking; whitespace after either tag is eaten; a half-written tag is
  held back until it is decided. The content goes on to `inner` (the template's tool-call
  parser) when there is one.
"""

from __future__ import annotations

from typing import Protocol

from a3s_power.chat.reply import ReplyDelta


class _Inner(Protocol):
    def feed(self, piece: str) -> ReplyDelta: ...
    def finish(self) -> ReplyDelta: ...


def _overlap(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a prefix of `tag`."""
    for n in range(min(len(tag), len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkingParser:
    """feed(piece) / finish() → ReplyDelta (thinking, and content or the inner parser's output)."""

    LOOKING, STARTED, THINKING, DONE_EATING, DONE = range(5)

    def __init__(self, opening: str, closing: str, inner: _Inner | None = None) -> None:
        self.opening, self.closing, self.inner = opening, closing, inner
        self.state = self.LOOKING
        self.acc = ""

    def _content(self, text: str) -> ReplyDelta:
        if self.inner is None:
            return ReplyDelta(content=text)
        return self.inner.feed(text) if text else ReplyDelta()

    def _eat(self) -> tuple[str, str, bool]:
        """One step of the state machine: (thinking, content, keep going)."""
        if self.state == self.LOOKING:
            trimmed = self.acc.lstrip()
            if trimmed.startswith(self.opening):
                after = trimmed[len(self.opening) :].lstrip()
                self.acc = after
                self.state = self.THINKING if after else self.STARTED
                return "", "", True
            if not trimmed or self.opening.startswith(trimmed):
                return "", "", False  # only whitespace or a part of the tag so far
            self.state = self.DONE  # no thinking: the reply is content, whitespace and all
            text, self.acc = self.acc, ""
            return "", text, False
        if self.state == self.STARTED:
            trimmed, self.acc = self.acc.lstrip(), ""
            if not trimmed:
                return "", "", False
            self.state, self.acc = self.THINKING, trimmed
            return "", "", True
        if self.state == self.THINKING:
            acc = self.acc
            at = acc.find(self.closing)
            if at >= 0:
                thinking, rest = acc[:at], acc[at + len(self.closing) :].lstrip()
                self.acc = ""
                self.state = self.DONE if rest else self.DONE_EATING
                return thinking, rest, False
            keep = _overlap(acc, self.closing)
            self.acc = acc[len(acc) - keep :] if keep else ""
            return acc[: len(acc) - keep], "", False
        if self.state == self.DONE_EATING:
            trimmed, self.acc = self.acc.lstrip(), ""
            if trimmed:
                self.state = self.DONE
            return "", trimmed, False
        text, self.acc = self.acc, ""
        return "", text, False

    def feed(self, piece: str) -> ReplyDelta:
        self.acc += piece
        thinking, content = [], []
        more = True
        while more:
            t, c, more = self._eat()
            thinking.append(t)
            content.append(c)
        out = self._content("".join(content))
        out.thinking = "".join(thinking) + out.thinking
        return out

    def finish(self) -> ReplyDelta:
        """The reply ended: what is still held back (a half tag) goes out as what it was inside."""
        rest, self.acc = self.acc, ""
        out = ReplyDelta()
        if rest and self.state == self.THINKING:
            out.thinking = rest
        elif rest and self.state in (self.LOOKING, self.DONE):
            out = self._content(rest)
        if self.inner is not None:
            out.add(self.inner.finish())
        return out
