"""What every request handler and the in-process CLI share: settings, store, scheduler, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from a3s_power.config import Settings
from a3s_power.observability.metrics import Metrics
from a3s_power.runtime.scheduler import Scheduler
from a3s_power.store.store import ModelStore

STATE_KEY = "power"  # where the Litestar app keeps it: `app.state.power`


@dataclass
class ServerState:
    settings: Settings
    store: ModelStore
    scheduler: Scheduler
    metrics: Metrics

    @classmethod
    def create(cls, settings: Settings, store: ModelStore | None = None) -> ServerState:
        """A fresh state (the server's, or the CLI's when it runs a model in-process)."""
        scheduler = Scheduler(
            max_loaded_models=settings.max_loaded_models,
            max_queue=settings.max_queue,
            default_keep_alive=settings.keep_alive,
        )
        return cls(settings, store or ModelStore(settings.models_root), scheduler, Metrics(scheduler))


def state_of(holder: object) -> ServerState:
    """The ServerState kept on a Litestar app (or on a request's app)."""
    app = getattr(holder, "app", holder)
    value = getattr(getattr(app, "state", None), STATE_KEY, None)
    if not isinstance(value, ServerState):
        raise RuntimeError("this application has no A3S Power server state")
    return value
