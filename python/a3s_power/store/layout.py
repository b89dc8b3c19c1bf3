"""Where things live in an Ollama-format models directory, and how the root is chosen."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from a3s_power.envvars import env_value
from a3s_power.store.names import ModelName, blob_filename

PARTIAL_MARK = "-partial"


def default_models_root(env: Mapping[str, str] | None = None) -> Path:
    """`$OLLAMA_MODELS`, else `$A3S_POWER_HOME/models`, else `~/.a3s/power/models`."""
    env = os.environ if env is None else env
    ollama_models = env_value(env, "OLLAMA_MODELS")
    if ollama_models:
        return Path(ollama_models).expanduser()
    home = env_value(env, "A3S_POWER_HOME")
    if home:
        return Path(home).expanduser() / "models"
    user_home = env_value(env, "HOME") or str(Path.home())
    return Path(user_home).expanduser() / ".a3s" / "power" / "models"


class StoreLayout:
    """Path arithmetic only; it never touches the disk except in the iterators."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.manifests = self.root / "manifests"
        self.blobs = self.root / "blobs"
        self.locks = self.root / ".locks"

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests.joinpath(*name.parts)

    def blob_path(self, digest: str) -> Path:
        return self.blobs / blob_filename(digest)

    def partial_path(self, digest: str) -> Path:
        return self.blobs / (blob_filename(digest) + PARTIAL_MARK)

    def partial_part_path(self, digest: str, index: int) -> Path:
        return self.blobs / f"{blob_filename(digest)}{PARTIAL_MARK}-{index}"

    def transfer_lock_path(self, key: str) -> Path:
        """Lock file guarding the partial download named `key` (a blob file name or `url-<hash>`)."""
        return self.locks / f"{key}.lock"

    def ensure(self) -> None:
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)

    def iter_manifest_files(self) -> Iterator[tuple[tuple[str, str, str, str], Path]]:
        """Every file exactly four levels below manifests/ (Ollama's `*/*/*/*` glob), sorted."""
        for parts, path in self.iter_manifest_paths():
            yield parts, Path(path)

    def iter_manifest_paths(self) -> Iterator[tuple[tuple[str, str, str, str], str]]:
        """iter_manifest_files with the paths as strings. os.scandir: the entries' types come with
        the listing (no stat per entry), and no Path is built (/api/tags walks this per request)."""
        for host, host_path in _scan(str(self.manifests), dirs=True):
            for namespace, ns_path in _scan(host_path, dirs=True):
                for model, model_path in _scan(ns_path, dirs=True):
                    for tag, tag_path in _scan(model_path, dirs=False):
                        yield (host, namespace, model, tag), tag_path


def _scan(path: str, *, dirs: bool) -> list[tuple[str, str]]:
    """(name, path) of the directories (or files) in `path` not starting with ".", by name."""
    try:
        with os.scandir(path) as it:
            found = [(e.name, e.path) for e in it if not e.name.startswith(".") and
                     (e.is_dir() if dirs else e.is_file())]  # fmt: skip
    except OSError:
        return []
    found.sort()
    return found
