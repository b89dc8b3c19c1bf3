"""Client command `create MODEL [-f Modelfile] [-q QUANT]`, as `ollama create` does it.

The Modelfile is parsed here (store.modelfile); each local file it names is hashed and uploaded as a
blob unless the server has it already (`HEAD`, then `POST /api/blobs/<digest>`); then `POST /api/create`
gets the structured request and its progress stream is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from a3s_power.cli._client import Client, ClientError, session
from a3s_power.cli._progress import Progress, follow
from a3s_power.cli.app import app
from a3s_power.store.blobs import sha256_file

DEFAULT_MODELFILE = "Modelfile"
ERR_MODELFILE_NOT_FOUND = "specified Modelfile wasn't found"
_CHUNK = 1 << 20


def read_modelfile(file: str | None) -> tuple[str | bytes, Path]:
    """The Modelfile's content and the directory its relative paths start from. Without `-f`, a missing
    `./Modelfile` means `FROM .` (Ollama's default); a missing `-f` file is an error."""
    path = Path(file or DEFAULT_MODELFILE).absolute()
    if not path.is_file():
        if file is None:
            return "FROM .\n", Path.cwd()
        raise ClientError(ERR_MODELFILE_NOT_FOUND)
    try:
        return path.read_bytes(), path.parent
    except OSError as exc:
        raise ClientError(f"open {path}: {exc.strerror or exc}") from exc


def _chunks(path: Path, progress: Progress, message: str) -> Iterator[bytes]:
    """The file's bytes, updating the `copying file <digest> NN%` spinner as they go."""
    spinner = progress.spinner(f"{message} 0%")
    size = path.stat().st_size or 1
    sent = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                sent += len(chunk)
                progress.set_message(spinner, f"{message} {sent * 100 // size}%")
                yield chunk
        progress.set_message(spinner, f"{message} 100%")
    finally:
        progress.stop_spinner(spinner)


def upload_blob(client: Client, path: Path, digest: str, progress: Progress) -> None:
    """Send the file as a blob unless the server already holds `digest`."""
    if client.status("HEAD", f"/api/blobs/{digest}") == 200:
        return
    size = path.stat().st_size
    client.upload(f"/api/blobs/{digest}", _chunks(path, progress, f"copying file {digest}"), size)


def _create_label(event: dict[str, Any]) -> str:
    return str(event.get("status") or f"pulling {str(event['digest'])[7:19]}...")


def build_body(
    model: str, text: str | bytes, base_dir: Path, quantize: str, progress: Progress
) -> dict[str, Any]:
    """Parse the Modelfile and hash its files (`gathering model components`) → the /api/create body,
    its `files`/`adapters` still mapping each name to (local path, digest) for `upload_blob`."""
    import sys

    from a3s_power.store.errors import StoreError
    from a3s_power.store.modelfile import parse_modelfile

    spinner = progress.spinner("gathering model components")
    try:
        request = parse_modelfile(text).to_request(base_dir)
        if request.draft:
            raise ClientError("DRAFT models are not supported")
        files = {name: (path, sha256_file(path)) for name, path in request.files.items()}
        adapters = {name: (path, sha256_file(path)) for name, path in request.adapters.items()}
    except StoreError as exc:
        raise ClientError(str(exc)) from exc
    except OSError as exc:
        raise ClientError(f"open {exc.filename}: {exc.strerror or exc}") from exc
    finally:
        progress.stop_spinner(spinner)
    for warning in request.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    body: dict[str, Any] = {"model": model, "files": files, "adapters": adapters}
    if request.from_ and not files:
        body["from"] = request.from_
    optional = {
        "template": request.template,
        "system": request.system,
        "license": request.license or None,
        "parameters": request.parameters or None,
        "messages": request.messages or None,
        "renderer": request.renderer,
        "parser": request.parser,
        "requires": request.requires,
        "quantize": quantize,
    }
    body.update({key: value for key, value in optional.items() if value not in (None, "")})
    return body


@app.command
def create(
    model: str,
    /,
    *,
    file: Annotated[str | None, Parameter(name=["--file", "-f"])] = None,
    quantize: Annotated[str, Parameter(name=["--quantize", "-q"])] = "",
) -> None:
    """Create a model from a Modelfile.

    Parameters
    ----------
    model
        The new model's name.
    file
        Name of the Modelfile (default: Modelfile in the current directory).
    quantize
        Quantize the model to this level (e.g. q4_K_M, q8_0); the source must be F16, BF16 or F32.
    """
    with session() as client, Progress() as progress:
        text, base_dir = read_modelfile(file)
        body = build_body(model, text, base_dir, quantize, progress)
        for key in ("files", "adapters"):
            staged: dict[str, tuple[Path, str]] = body.pop(key)
            for path, digest in staged.values():
                upload_blob(client, path, digest, progress)
            if staged:
                body[key] = {name: digest for name, (_, digest) in staged.items()}
        try:
            follow(progress, client.stream("/api/create", body), _create_label)
        except ClientError as exc:
            if "path or Modelfile are required" in str(exc):
                raise ClientError("the server must be updated to use `create` with this client") from exc
            raise
