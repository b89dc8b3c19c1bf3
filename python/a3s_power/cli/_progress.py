"""Ollama's progress display (progress/bar.go, spinner.go) on stderr for pull, push and create.

A stack of spinners (one per status) and bars (one per layer digest). On a terminal it is redrawn in
place ten times a second with rich's `Live`; otherwise each step is one plain line: a spinner's message
when it starts (and its last message when it stops, if that changed), a bar's final line when it fills.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from a3s_power.cli._format import human_bytes

SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PLAIN_WIDTH = 80  # Ollama's default terminal width


def _go_duration(seconds: int) -> str:
    """Go's `time.Duration.String` of whole seconds: `0s`, `25s`, `1m30s`."""
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _remaining(seconds: int) -> str:
    """progress.formatDuration."""
    if seconds >= 100 * 3600:
        return "99h+"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds // 60 % 60}m"
    return _go_duration(seconds)


@dataclass(slots=True)
class Spinner:
    message: str
    started: float = field(default_factory=time.monotonic)
    first_message: str = ""
    stopped: bool = False

    def render(self, now: float) -> str:
        text = self.message.strip() + " " if self.message else ""
        if not self.stopped:
            text += SPINNER_FRAMES[int((now - self.started) * 10) % len(SPINNER_FRAMES)] + " "
        return text


@dataclass(slots=True)
class Bar:
    message: str
    total: int
    completed: int
    started: float = field(default_factory=time.monotonic)
    initial: int = 0
    stopped: bool = False

    def set(self, completed: int) -> None:
        self.completed = min(completed, self.total) if self.total > 0 else completed
        if self.completed >= self.total:
            self.stopped = True

    def percent(self) -> float:
        return self.completed / self.total * 100 if self.total > 0 else 0.0

    def rate(self, now: float) -> float:
        elapsed = now - self.started
        return (self.completed - self.initial) / elapsed if elapsed >= 1 else 0.0

    def render(self, width: int, now: float) -> str:
        """Bar.String: `pulling 6a0746a1ec1a:  45% ▕███     ▏ 2.1 GB/4.7 GB  104 MB/s     25s`."""
        pre = (self.message.strip() + " " if self.message else "") + f"{self.percent():3.0f}%"
        total = human_bytes(self.total)
        if not self.stopped:
            current = human_bytes(self.completed)
            suffix = " " * (6 - len(current)) + current + "/" + total + " " * (6 - len(total))
        else:
            suffix = " " * (6 - len(total)) + total + " " * 7
        rate = self.rate(now)
        if not self.stopped and rate > 0:
            human_rate = human_bytes(int(rate))
            left = _remaining(int((self.total - self.completed) / rate))
            suffix += "  " + " " * (6 - len(human_rate)) + human_rate + "/s"
            suffix += "  " + " " * (6 - len(left)) + left
        else:
            suffix += " " * 18
        room = width - len(pre) - len(suffix) - 5
        filled = int(room * self.percent() / 100)
        return pre + " ▕" + "█" * max(filled, 0) + " " * max(room - filled, 0) + "▏ " + suffix


class Progress:
    """The stack of spinners and bars; use as a context manager (stopping freezes the last frame)."""

    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._items: list[Spinner | Bar] = []  # in order of appearance, as Ollama's Progress.Add
        self._bars: dict[str, Bar] = {}
        self._lock = threading.Lock()
        self._live: Any = None
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream, highlight=False)
            self._live = Live(
                self,
                console=self._console,
                refresh_per_second=10,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def __rich__(self) -> Any:
        from rich.text import Text

        now = time.monotonic()
        width = self._console.width
        with self._lock:
            lines = [
                item.render(width, now) if isinstance(item, Bar) else item.render(now) for item in self._items
            ]
        return Text("\n".join(lines), no_wrap=True, overflow="crop")

    def _print(self, line: str) -> None:
        print(line.rstrip(), file=self.stream, flush=True)

    def spinner(self, message: str) -> Spinner:
        """Start a spinner below the items shown so far."""
        item = Spinner(message, first_message=message)
        with self._lock:
            self._items.append(item)
        if not self.live:
            self._print(message)
        return item

    def set_message(self, spinner: Spinner, message: str) -> None:
        with self._lock:
            spinner.message = message

    def stop_spinner(self, spinner: Spinner | None) -> None:
        if spinner is None or spinner.stopped:
            return
        with self._lock:
            spinner.stopped = True
        if not self.live and spinner.message != spinner.first_message:
            self._print(spinner.message)

    def bar(self, key: str, message: str, total: int, completed: int) -> Bar:
        """The bar for `key`, created on first use; then set to `completed`."""
        with self._lock:
            item = self._bars.get(key)
            if item is None:
                item = Bar(message, total, completed, initial=completed)
                self._bars[key] = item
                self._items.append(item)
            was_stopped = item.stopped
            item.total = total or item.total
            item.set(completed)
        if not self.live and item.stopped and not was_stopped:
            self._print(item.render(PLAIN_WIDTH, time.monotonic()))
        return item

    def stop(self) -> None:
        with self._lock:
            items = list(self._items)
        for item in items:
            if isinstance(item, Spinner):
                self.stop_spinner(item)
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def follow(
    progress: Progress,
    events: Iterable[dict[str, Any]],
    bar_label: Callable[[dict[str, Any]], str | None],
) -> dict[str, Any] | None:
    """Show a progress stream: a bar per event with a digest (labelled by `bar_label`; None skips the
    event), a new spinner whenever the status changes. Returns the last event."""
    status = ""
    spinner: Spinner | None = None
    last: dict[str, Any] | None = None
    for event in events:
        last = event
        digest = str(event.get("digest") or "")
        if digest:
            label = bar_label(event)
            if label is None:
                continue
            progress.stop_spinner(spinner)
            progress.bar(digest, label, int(event.get("total") or 0), int(event.get("completed") or 0))
        elif event.get("status", "") != status:
            progress.stop_spinner(spinner)
            status = str(event.get("status", ""))
            spinner = progress.spinner(status)
    return last
