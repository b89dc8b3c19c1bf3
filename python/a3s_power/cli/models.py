"""Client commands for the local models: `list` (`ls`), `show`, `cp`, `rm`."""

from __future__ import annotations

import sys
from typing import Annotated

from cyclopts import Parameter

from a3s_power.cli._client import ClientError, fail, session
from a3s_power.cli._format import human_bytes, human_time, parse_time, render_table
from a3s_power.cli.app import app

_FLAG = Parameter(negative=())
SHOW_FLAGS = ("license", "modelfile", "parameters", "system", "template")
ERR_ONE_FLAG = (
    "only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified"
)


@app.command(name="list", alias="ls")
def list_models(prefix: str | None = None, /) -> None:
    """List models (NAME, ID, SIZE, MODIFIED), newest first.

    Parameters
    ----------
    prefix
        Only models whose name starts with this (case-insensitive).
    """
    with session() as client:
        reply = client.call("GET", "/api/tags") or {}
    rows = []
    for model in reply.get("models") or []:
        name = str(model.get("name", ""))
        if prefix and not name.lower().startswith(prefix.lower()):
            continue
        size = "-" if model.get("remote_model") else human_bytes(int(model.get("size") or 0))
        modified = human_time(parse_time(model.get("modified_at")), "Never")
        rows.append([name, str(model.get("digest", ""))[:12], size, modified])
    sys.stdout.write(render_table(rows, header=["NAME", "ID", "SIZE", "MODIFIED"]))


@app.command
def show(
    model: str,
    /,
    *,
    license: Annotated[bool, _FLAG] = False,
    modelfile: Annotated[bool, _FLAG] = False,
    parameters: Annotated[bool, _FLAG] = False,
    system: Annotated[bool, _FLAG] = False,
    template: Annotated[bool, _FLAG] = False,
    verbose: Annotated[bool, Parameter(name=["--verbose", "-v"], negative=())] = False,
) -> None:
    """Show information for a model.

    Parameters
    ----------
    model
        The model's name.
    license
        Show the license of a model.
    modelfile
        Show the Modelfile of a model.
    parameters
        Show the parameters of a model.
    system
        Show the system message of a model.
    template
        Show the template of a model.
    verbose
        Show detailed model information (metadata and tensors).
    """
    from a3s_power.cli._showinfo import render_show

    flags = (license, modelfile, parameters, system, template)
    chosen = [name for name, on in zip(SHOW_FLAGS, flags, strict=True) if on]
    if len(chosen) > 1:
        fail(ERR_ONE_FLAG)
    with session() as client:
        reply = client.call("POST", "/api/show", {"model": model, "verbose": verbose}) or {}
    if not chosen:
        sys.stdout.write(render_show(reply, verbose))
        return
    value = str(reply.get(chosen[0]) or "")
    # Ollama prints the license, Modelfile and parameters with a newline, system and template as they are
    sys.stdout.write(value if chosen[0] in ("system", "template") else value + "\n")


@app.command
def cp(source: str, destination: str, /) -> None:
    """Copy a model (only its manifest: the copy shares the original's blobs).

    Parameters
    ----------
    source
        The existing model.
    destination
        The new name.
    """
    with session() as client:
        client.call("POST", "/api/copy", {"source": source, "destination": destination})
    print(f"copied '{source}' to '{destination}'")


@app.command(alias="delete")
def rm(*models: str) -> None:
    """Remove models, unloading each first if it is running.

    Parameters
    ----------
    models
        The models to delete.
    """
    if not models:
        fail("requires at least 1 arg(s), only received 0")
    with session() as client:
        for model in models:
            try:
                client.call("POST", "/api/generate", {"model": model, "keep_alive": 0, "stream": False})
            except ClientError as exc:
                if "not found" not in str(exc).lower():
                    print(f"Warning: unable to stop model '{model}'", file=sys.stderr)
            client.call("DELETE", "/api/delete", {"model": model})
            print(f"deleted '{model}'", flush=True)
