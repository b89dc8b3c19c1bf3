"""Errors of the model store and the registry client, with Ollama's texts where Ollama has them."""

from __future__ import annotations

from a3s_power.errors import InvalidRequest, PowerError
from a3s_power.errors import ModelNotFound as _PowerModelNotFound


class StoreError(PowerError):
    """Base class of every store and registry failure."""

    status = 500


class InvalidModelName(StoreError, InvalidRequest):
    """A name that does not parse as `[host/][namespace/]model[:tag]`."""

    status = 400

    def __init__(self, name: str = "") -> None:
        super().__init__("invalid model name")
        self.name = name


class InvalidDigest(StoreError, InvalidRequest):
    status = 400

    def __init__(self, digest: str = "") -> None:
        super().__init__("invalid digest format")
        self.digest = digest


class ModelNotFound(StoreError, _PowerModelNotFound):
    """`str(err)` is the scheduler text; `err.api_message` is the /api/show text (`model 'x' not found`)."""

    status = 404

    def __init__(self, name: str) -> None:
        _PowerModelNotFound.__init__(self, name)

    @property
    def api_message(self) -> str:
        return f"model '{self.name}' not found"


class BlobNotFound(StoreError):
    status = 404

    def __init__(self, digest: str) -> None:
        super().__init__(f'blob "{digest}" not found')
        self.digest = digest


class StoreFull(StoreError):
    """The models directory's file system is full (ENOSPC/EDQUOT): 507, and nothing partial left."""

    status = 507

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(f"{what}: no space left on the device holding the models directory{detail}")


def is_disk_full(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class CorruptBlob(StoreError):
    """A stored blob whose content no longer hashes to its name (a bit flip, a truncated copy)."""

    status = 500

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(
            f"model blob {expected} is corrupt: its content hashes to {got}; "
            "remove the model and pull or create it again"
        )
        self.expected = expected


class DigestMismatch(StoreError):
    status = 400

    def __init__(self, expected: str, got: str, *, downloaded: bool = False) -> None:
        if downloaded:
            text = f"digest mismatch, file must be downloaded again: want {expected}, got {got}"
        else:
            text = f'digest mismatch, expected "{expected}", got "{got}"'
        super().__init__(text)
        self.expected = expected
        self.got = got


class InvalidModelfile(StoreError):
    """A Modelfile syntax or semantic error. `line` is 1-based, or 0 when the error has no line."""

    status = 400

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"(line {line}): {message}" if line else message)
        self.line = line
        self.message = message


class InvalidGGUF(StoreError):
    """A file that is not a GGUF, or a truncated/corrupt GGUF header."""

    status = 400


class CreateError(StoreError):
    status = 400


class RegistryError(StoreError):
    """An error answered by (or on the way to) a registry. `status` is the HTTP status, 0 if none."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status if status else 500
        self.http_status = status
        self.message = message


class ManifestNotFound(RegistryError):
    """Registry 404 on a manifest (Ollama maps it to os.ErrNotExist)."""

    def __init__(self) -> None:
        super().__init__(404, "pull model manifest: file does not exist")


class InsecureProtocol(RegistryError):
    def __init__(self) -> None:
        super().__init__(400, "insecure protocol http")
