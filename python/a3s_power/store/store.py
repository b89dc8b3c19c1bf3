"""The model store: manifests + blobs in Ollama's layout, with list, copy, delete and prune."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from a3s_power.envvars import env_flag
from a3s_power.store.atomic import atomic_write_bytes
from a3s_power.store.blobs import import_file_as_blob, incoming_is_orphaned, sha256_bytes, write_blob_bytes
from a3s_power.store.errors import InvalidModelName, ModelNotFound, StoreError
from a3s_power.store.layout import PARTIAL_MARK, StoreLayout, default_models_root
from a3s_power.store.locks import TransferLock
from a3s_power.store.manifest import Layer, Manifest
from a3s_power.store.names import ModelName, is_valid_name, normalize_digest, parse_name

PRUNE_MIN_AGE_S = 3600.0


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One row of `list` / `/api/tags`."""

    name: ModelName
    manifest: Manifest
    digest: str  # sha256 hex of the manifest file bytes, no prefix
    size: int
    modified_at: dt.datetime
    config: dict[str, Any]


def format_time(moment: dt.datetime) -> str:
    """RFC 3339 with the local offset, like Go's time.Time JSON (`2024-05-01T10:00:00.123456789+02:00`)."""
    return moment.astimezone().isoformat()


class ModelStore:
    def __init__(self, root: Path | str | None = None, env: Mapping[str, str] | None = None) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.layout = StoreLayout(root if root is not None else default_models_root(self.env))
        # list_models: entries of unchanged manifests (same mtime and size) are not re-read
        self._entries: dict[str, tuple[tuple[int, int], ModelEntry]] = {}
        self._listed: int | None = None  # how many models the last list_models found

    @property
    def root(self) -> Path:
        return self.layout.root

    # -- names -----------------------------------------------------------------------------------
    def find(self, name: str | ModelName) -> ModelName | None:
        """The stored name equal to `name` ignoring case, or None."""
        wanted = name if isinstance(name, ModelName) else parse_name(name)
        exact = self.layout.manifest_path(wanted)
        if exact.is_file():
            return wanted
        for parts, _ in self.layout.iter_manifest_files():
            candidate = ModelName(*parts, scheme=wanted.scheme)
            if candidate.key == wanted.key:
                return candidate
        return None

    def resolve(self, name: str | ModelName) -> ModelName:
        found = self.find(name)
        if found is None:
            raise ModelNotFound(name if isinstance(name, str) else name.display_shortest())
        return found

    def target_name(self, name: str | ModelName) -> ModelName:
        """Where a write of `name` goes: the existing case variant if there is one."""
        wanted = name if isinstance(name, ModelName) else parse_name(name)
        return self.find(wanted) or wanted

    # -- manifests -------------------------------------------------------------------------------
    def read_manifest_bytes(self, name: str | ModelName) -> tuple[ModelName, bytes]:
        resolved = self.resolve(name)
        try:
            return resolved, self.layout.manifest_path(resolved).read_bytes()
        except FileNotFoundError as exc:
            raise ModelNotFound(str(name)) from exc

    def read_manifest(self, name: str | ModelName) -> tuple[ModelName, Manifest]:
        resolved, raw = self.read_manifest_bytes(name)
        return resolved, Manifest.from_bytes(raw)

    def write_manifest(self, name: str | ModelName, manifest: Manifest | bytes) -> ModelName:
        """Atomically write a manifest. All blobs it names must already be in the store."""
        raw = manifest if isinstance(manifest, bytes) else manifest.to_bytes()
        parsed = Manifest.from_bytes(raw)
        missing = [layer.digest for layer in parsed.all_blobs() if not self.has_blob(layer.digest)]
        if missing:
            raise StoreError(f"manifest references missing blobs: {', '.join(missing)}")
        target = self.target_name(name)
        atomic_write_bytes(self.layout.manifest_path(target), raw)
        return target

    def manifest_mtime(self, name: ModelName) -> dt.datetime:
        stat = self.layout.manifest_path(name).stat()
        return dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)

    # -- blobs -----------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.layout.blob_path(digest)

    def has_blob(self, digest: str) -> bool:
        return self.layout.blob_path(digest).is_file()

    def add_blob_bytes(self, data: bytes) -> Layer:
        digest, size = write_blob_bytes(self.layout, data)
        return Layer(media_type="", digest=digest, size=size)

    def add_blob_file(self, path: Path) -> Layer:
        digest, size = import_file_as_blob(self.layout, path)
        return Layer(media_type="", digest=digest, size=size)

    def read_blob(self, digest: str) -> bytes:
        return self.layout.blob_path(digest).read_bytes()

    def read_config(self, manifest: Manifest) -> dict[str, Any]:
        try:
            data = orjson.loads(self.read_blob(manifest.config.digest))
        except (OSError, orjson.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- list / copy / delete / prune ------------------------------------------------------------
    def list_models(self) -> list[ModelEntry]:
        """Every valid manifest, newest first. Unreadable manifests are skipped, as Ollama does."""
        entries = self._listing(read=True)
        assert entries is not None
        self._listed = len(entries)
        return entries

    def cached_listing(self, max_models: int = 64) -> list[ModelEntry] | None:
        """list_models from what it read before: a directory walk and a stat per manifest, no file
        read (quick enough for the event loop while the store holds up to `max_models`). None when
        list_models has not run, found more, or any manifest is new or changed since."""
        if self._listed is None or self._listed > max_models:
            return None
        return self._listing(read=False)

    def _listing(self, *, read: bool) -> list[ModelEntry] | None:
        entries: list[ModelEntry] = []
        for parts, path in self.layout.iter_manifest_paths():
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            cached = self._entries.get(path)  # the path is the name: a cached one was valid
            if cached is not None and cached[0] == key:
                entries.append(cached[1])
                continue
            if not is_valid_name(f"{parts[0]}/{parts[1]}/{parts[2]}:{parts[3]}"):
                continue
            if not read:
                return None
            try:
                raw = Path(path).read_bytes()
                manifest = Manifest.from_bytes(raw)
            except (OSError, StoreError):
                continue
            entry = ModelEntry(
                name=ModelName(*parts),
                manifest=manifest,
                digest=sha256_bytes(raw).removeprefix("sha256:"),
                size=manifest.total_size(),
                modified_at=dt.datetime.fromtimestamp(st.st_mtime, tz=dt.UTC),
                config=self.read_config(manifest),
            )
            self._entries[path] = (key, entry)
            entries.append(entry)
        entries.sort(key=lambda e: e.modified_at, reverse=True)
        return entries

    def copy(self, source: str, destination: str) -> ModelName:
        try:
            dst = parse_name(destination)
        except InvalidModelName as exc:
            raise InvalidModelName(destination) from exc
        src, raw = self.read_manifest_bytes(source)
        target = self.target_name(dst)
        atomic_write_bytes(self.layout.manifest_path(target), raw)
        del src
        return target

    def delete(self, name: str) -> list[str]:
        """Remove a manifest and the blobs no other manifest references. Returns the removed digests."""
        resolved, manifest = self.read_manifest(name)
        path = self.layout.manifest_path(resolved)
        path.unlink()
        self._remove_empty_dirs(path.parent)
        candidates = {layer.digest for layer in manifest.all_blobs()}
        return self._remove_unreferenced(candidates)

    def referenced_blobs(self) -> set[str]:
        refs: set[str] = set()
        for _, path in self.layout.iter_manifest_files():
            try:
                manifest = Manifest.from_bytes(path.read_bytes())
            except (OSError, StoreError):
                continue
            refs.update(layer.digest for layer in manifest.all_blobs())
        return refs

    def prune(self, *, min_age_s: float = PRUNE_MIN_AGE_S, now: float | None = None) -> list[str]:
        """Startup prune: unreferenced blobs, stale partial downloads and temp files older than min_age_s.

        Does nothing when OLLAMA_NOPRUNE is set. Returns the removed file names.
        """
        if env_flag(self.env, "OLLAMA_NOPRUNE") or not self.layout.blobs.is_dir():
            return []
        now = time.time() if now is None else now
        refs = {normalize_digest(d) for d in self.referenced_blobs()}
        removed: list[str] = []
        for path in self.layout.blobs.iterdir():
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            name = path.name
            if not path.is_file() or (age < min_age_s and not incoming_is_orphaned(name)):
                continue
            if PARTIAL_MARK in name and self._partial_in_use(name):
                continue
            if name.startswith("sha256-") and PARTIAL_MARK not in name and len(name) == 71:
                try:
                    referenced = normalize_digest(name) in refs
                except StoreError:
                    referenced = False
                if referenced:
                    continue
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(name)
        return removed

    def _partial_in_use(self, name: str) -> bool:
        """A partial download, part record or temp file whose transfer lock a live pull holds."""
        key = name.lstrip(".")[: name.lstrip(".").index(PARTIAL_MARK)]
        return TransferLock(self.layout.transfer_lock_path(key)).is_held_elsewhere()

    def _remove_unreferenced(self, candidates: set[str]) -> list[str]:
        refs = self.referenced_blobs()
        removed = []
        for digest in sorted(candidates - refs):
            with contextlib.suppress(FileNotFoundError):
                self.layout.blob_path(digest).unlink()
                removed.append(digest)
        return removed

    def remove_orphans_of(self, old: Manifest | None) -> list[str]:
        """After a tag moved to a new manifest, drop blobs only the old one used (unless OLLAMA_NOPRUNE)."""
        if old is None or env_flag(self.env, "OLLAMA_NOPRUNE"):
            return []
        return self._remove_unreferenced({layer.digest for layer in old.all_blobs()})

    def _remove_empty_dirs(self, directory: Path) -> None:
        while directory != self.layout.manifests and self.layout.manifests in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent
