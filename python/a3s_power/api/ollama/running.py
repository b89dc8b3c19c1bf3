"""`/api/ps`: the loaded models as Ollama lists them."""

from __future__ import annotations

from a3s_power.api.ollama.manage_protocol import ProcessModel, ProcessResponse, model_details
from a3s_power.api.streaming import now_rfc3339
from a3s_power.service.state import ServerState
from a3s_power.store.names import parse_name


def ps(state: ServerState) -> ProcessResponse:
    models = []
    for runner in state.scheduler.loaded():
        expires = runner.expires_at
        models.append(
            ProcessModel(
                name=_short(runner.key),
                model=_short(runner.key),
                size=runner.size,
                digest=runner.digest,
                details=model_details(runner.details),
                expires_at=expires.isoformat().replace("+00:00", "Z") if expires else now_rfc3339(),
                context_length=runner.spec.num_ctx,
            )
        )
    return ProcessResponse(models)


def _short(full: str) -> str:
    return parse_name(full).display_shortest()
