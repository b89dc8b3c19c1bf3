"""Client commands for registry transfers: `pull` and `push`, with Ollama's progress display."""

from __future__ import annotations

from typing import Annotated, Any

from cyclopts import Parameter

from a3s_power.cli._client import ClientError, session
from a3s_power.cli._progress import Progress, follow
from a3s_power.cli.app import app

_INSECURE = Parameter(negative=())
ERR_UNAUTHORIZED = (
    "you are not authorized to push to this namespace, create the model under a namespace you own"
)


def _pull_label(event: dict[str, Any]) -> str | None:
    """`pulling 6a0746a1ec1a:`; the first event of a layer (nothing completed yet) shows no bar."""
    if not event.get("completed"):
        return None
    name = str(event["digest"]).strip()
    if name.startswith("sha256:"):
        name = name.removeprefix("sha256:").strip()[:12]
    return f"pulling {name}:"


def _push_label(event: dict[str, Any]) -> str:
    return f"pushing {str(event['digest'])[7:19]}..."


@app.command
def pull(model: str, /, *, insecure: Annotated[bool, _INSECURE] = False) -> None:
    """Pull a model from a registry.

    Parameters
    ----------
    model
        The model's name, e.g. `llama3.2`, `hf.co/user/repo:Q4_K_M`.
    insecure
        Use an insecure registry (plain HTTP, unverified TLS).
    """
    with session() as client, Progress() as progress:
        follow(progress, client.stream("/api/pull", {"model": model, "insecure": insecure}), _pull_label)


def _destination(model: str) -> str:
    """Where the pushed model can be found: its full name, or its ollama.com page."""
    from a3s_power.store.errors import InvalidModelName
    from a3s_power.store.names import parse_name

    try:
        name = parse_name(model)
    except InvalidModelName:
        return model
    if name.host.endswith((".ollama.ai", ".ollama.com")):
        return "https://ollama.com/" + name.display_shortest().removesuffix(":latest")
    return str(name)


@app.command
def push(model: str, /, *, insecure: Annotated[bool, _INSECURE] = False) -> None:
    """Push a model to a registry.

    Parameters
    ----------
    model
        The model's name, including the registry host and namespace to push to.
    insecure
        Use an insecure registry (plain HTTP, unverified TLS).
    """
    with session() as client:
        try:
            with Progress() as progress:
                events = client.stream("/api/push", {"model": model, "insecure": insecure})
                follow(progress, events, _push_label)
        except ClientError as exc:
            text = str(exc).lower()
            if "access denied" in text or "unauthorized" in text:
                raise ClientError(ERR_UNAUTHORIZED, exc.status) from exc
            raise
    print(f"\nYou can find your model at:\n\n\t{_destination(model)}")
