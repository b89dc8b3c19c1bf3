"""Content-addressed blobs: `blobs/sha256-<hex>`, always verified before they become visible."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from a3s_power.store.atomic import fsync_dir
from a3s_power.store.errors import CorruptBlob, DigestMismatch
from a3s_power.store.layout import StoreLayout
from a3s_power.store.names import normalize_digest

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


_VERIFIED: dict[tuple[str, int, int, int], None] = {}  # (path, inode, size, mtime_ns) hashed clean


def verify_stored_blob(path: str | os.PathLike[str]) -> None:
    """Raise CorruptBlob if a `sha256-<hex>` blob's content does not hash to its name. Each file
    (inode, size, mtime) is hashed once per process; paths that are not blobs are not checked."""
    path = Path(path)
    name = path.name
    if not (name.startswith("sha256-") and len(name) == 71):
        return
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return
    expected = "sha256:" + name[7:].lower()
    got = sha256_file(path)
    if got != expected:
        raise CorruptBlob(expected, got)
    _VERIFIED[key] = None


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


INCOMING_PREFIX = ".incoming-"


def incoming_is_orphaned(name: str) -> bool:
    """A `.incoming-<pid>-*.tmp` upload partial whose writing process is gone."""
    if not (name.startswith(INCOMING_PREFIX) and name.endswith(".tmp")):
        return False
    pid_text = name[len(INCOMING_PREFIX) :].split("-", 1)[0]
    if not pid_text.isdigit():
        return False  # an older writer's name: left to the age rule
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class BlobWriter:
    """Stream bytes into a temp file next to the blobs, hashing as they come; `commit` makes it a blob."""

    def __init__(self, layout: StoreLayout) -> None:
        layout.ensure()
        self._layout = layout
        # the writer's pid in the name: a start-up prune removes the partials of dead processes at once
        fd, name = tempfile.mkstemp(
            prefix=f"{INCOMING_PREFIX}{os.getpid()}-", suffix=".tmp", dir=layout.blobs
        )
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self._committed = False
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> str:
        """Verify against `expected` (if given) and move into place. Returns the digest."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        got = self.digest
        if expected is not None and normalize_digest(expected) != got:
            self.abort()
            raise DigestMismatch(normalize_digest(expected), got)
        target = self._layout.blob_path(got)
        if target.exists():
            self._tmp.unlink()
        else:
            os.replace(self._tmp, target)
            fsync_dir(target.parent)
        self._committed = True
        return got

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            self.abort()


def write_blob_bytes(layout: StoreLayout, data: bytes) -> tuple[str, int]:
    with BlobWriter(layout) as writer:
        writer.write(data)
        return writer.commit(), writer.size


def write_blob_chunks(layout: StoreLayout, chunks: Iterable[bytes], expected: str | None = None) -> str:
    with BlobWriter(layout) as writer:
        for chunk in chunks:
            writer.write(chunk)
        return writer.commit(expected)


def import_file_as_blob(layout: StoreLayout, source: Path) -> tuple[str, int]:
    """Copy a file into the store (hashing while copying). Returns (digest, size)."""
    with BlobWriter(layout) as writer, open(source, "rb") as handle:
        while block := handle.read(CHUNK):
            writer.write(block)
        return writer.commit(), writer.size


def blob_exists(layout: StoreLayout, digest: str) -> bool:
    return layout.blob_path(digest).is_file()


def copy_blob_out(layout: StoreLayout, digest: str, dest: Path) -> None:
    shutil.copyfile(layout.blob_path(digest), dest)
