"""Client commands for running models: `ps` and `stop`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from a3s_power.cli._client import ClientError, fail, session
from a3s_power.cli._format import human_bytes, human_time, parse_time, render_table
from a3s_power.cli.app import app


def processor(size: int, size_vram: int) -> str:
    """`100% CPU`, `100% GPU`, `48%/52% CPU/GPU` or `Unknown`, from how much of the model is in VRAM."""
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size == 0:
        return "Unknown"
    cpu = int((size - size_vram) / size * 100 + 0.5)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def until(expires_at: object, now: datetime | None = None) -> str:
    """`4 minutes from now`, `Forever`, or `Stopping...` once the expiry has passed."""
    when = parse_time(expires_at)
    now = now or datetime.now(UTC)
    if when is not None and when < now:
        return "Stopping..."
    return human_time(when, "Never", now)


@app.command
def ps(prefix: str | None = None, /) -> None:
    """List running models (NAME, ID, SIZE, PROCESSOR, CONTEXT, UNTIL).

    Parameters
    ----------
    prefix
        Only models whose name starts with this.
    """
    with session() as client:
        reply = client.call("GET", "/api/ps") or {}
    rows = []
    for model in reply.get("models") or []:
        name = str(model.get("name", ""))
        if prefix and not name.startswith(prefix):
            continue
        size = int(model.get("size") or 0)
        rows.append(
            [
                name,
                str(model.get("digest", ""))[:12],
                human_bytes(size),
                processor(size, int(model.get("size_vram") or 0)),
                str(int(model.get("context_length") or 0)),
                until(model.get("expires_at")),
            ]
        )
    sys.stdout.write(render_table(rows, header=["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]))


def _is_running(model: str, running: list[dict[str, Any]]) -> bool:
    from a3s_power.store.errors import InvalidModelName
    from a3s_power.store.names import parse_name

    try:
        wanted = parse_name(model)
    except InvalidModelName:
        return False
    for entry in running:
        for key in ("model", "name"):
            try:
                if parse_name(str(entry.get(key) or "")).same_model(wanted):
                    return True
            except InvalidModelName:
                continue
    return False


@app.command
def stop(model: str, /) -> None:
    """Stop a running model (unload it now).

    Parameters
    ----------
    model
        The model's name.
    """
    not_running = f'couldn\'t find model "{model}" to stop'
    with session() as client:
        running = (client.call("GET", "/api/ps") or {}).get("models") or []
        if not _is_running(model, running):
            fail(not_running)
        try:
            client.call("POST", "/api/generate", {"model": model, "keep_alive": 0, "stream": False})
        except ClientError as exc:
            if "not found" in str(exc):
                fail(not_running)
            raise
