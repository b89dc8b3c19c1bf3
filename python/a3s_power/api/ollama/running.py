"""`/api/ps`: the loaded models as Ollama lists them."""

from __future__ import annotations

from typing import Any

from a3s_power.api.ollama.manage_protocol import ProcessModel, ProcessResponse, model_details
from a3s_power.api.streaming import now_rfc3339
from a3s_power.service.state import ServerState
from a3s_power.store.names import parse_name


def ps(state: ServerState) -> ProcessResponse:
    models = []
    for runner in state.scheduler.loaded():
        expires = runner.expires_at
        entry = ProcessModel(
            name=_short(runner.key),
            model=_short(runner.key),
            size=runner.size,
            digest=runner.digest,
            details=model_details(runner.details),
            expires_at=expires.isoformat().replace("+00:00", "Z") if expires else now_rfc3339(),
            context_length=runner.spec.num_ctx,
        )
        if runner.loaded.rpc_servers:  # split across RPC workers: which devices hold how much
            devices = runner.loaded.devices()
            entry.devices = devices
            entry.size_vram = sum(d["size"] for d in devices if d["name"] != "CPU")
            if runner.loaded.rpc_dropped:
                entry.rpc_unreachable = list(runner.loaded.rpc_dropped)
        models.append(entry)
    return ProcessResponse(models)


def devices_of(state: ServerState, model: str) -> list[dict[str, Any]]:
    """The devices a loaded model is split across (empty when not loaded or not split)."""
    try:
        runner = state.scheduler.get(str(parse_name(model)))
    except Exception:  # noqa: BLE001  show reports a bad name itself
        return []
    if runner is None or not runner.loaded.rpc_servers:
        return []
    return runner.loaded.devices()


def _short(full: str) -> str:
    return parse_name(full).display_shortest()
