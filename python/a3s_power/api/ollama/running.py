"""`/api/ps`: the loaded models as Ollama lists them."""

from __future__ import annotations

from typing import Any

from a3s_power.api.streaming import now_rfc3339
from a3s_power.service.state import ServerState
from a3s_power.store.names import parse_name

Event = dict[str, Any]


def ps(state: ServerState) -> Event:
    models = []
    for runner in state.scheduler.loaded():
        expires = runner.expires_at
        models.append(
            {
                "name": _short(runner.key),
                "model": _short(runner.key),
                "size": runner.size,
                "digest": runner.digest,
                "details": runner.details,
                "expires_at": expires.isoformat().replace("+00:00", "Z") if expires else now_rfc3339(),
                "size_vram": 0,
                "context_length": runner.spec.num_ctx,
            }
        )
    return {"models": models}


def _short(full: str) -> str:
    return parse_name(full).display_shortest()
