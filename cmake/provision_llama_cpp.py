#!/usr/bin/env python3
"""Provision the pinned llama.cpp source when the submodule is empty.

GitHub is not reachable on our build machines, so the identical source is taken from
PyPI's llama-cpp-python 0.3.36 sdist (its ``vendor/llama.cpp`` is upstream commit
0c1e57098bba43ac29e6e3b677cdceebdd22334f). The sdist is fetched with ``pip download``,
its sha256 checked, and only ``vendor/llama.cpp`` is extracted into a per-user cache keyed
by the commit. Later builds reuse the cache. Prints the source directory on stdout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"
SDIST_NAME = "llama-cpp-python"
SDIST_VERSION = "0.3.36"
SDIST_FILE = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDOR_PREFIX = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
MARKER = ".a3s-power-provisioned"

ADVICE = (
    "Fix: run `git submodule update --init third_party/llama.cpp` where GitHub is reachable, "
    "or point LLAMA_CPP_SOURCE_DIR at a llama.cpp checkout of commit " + COMMIT + ", "
    "or make PyPI reachable so `pip download llama-cpp-python==0.3.36` works."
)


def fail(message: str) -> None:
    print(f"a3s-power: cannot provision llama.cpp: {message}\n{ADVICE}", file=sys.stderr)
    raise SystemExit(1)


def cache_root() -> Path:
    env = os.environ.get("A3S_POWER_BUILD_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "a3s-power"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_commands() -> list[list[str]]:
    commands = [[sys.executable, "-m", "pip"]]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            commands.append([found])
    return commands


def download_sdist(into: Path) -> Path:
    """Fetch the sdist with pip (tries this interpreter's pip, then pip on PATH)."""
    errors: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.pop("PYTHONPATH", None)  # leave pip's isolated build environment
    env.pop("PYTHONNOUSERSITE", None)
    for pip in pip_commands():
        for isolation in (["--no-build-isolation"], []):
            cmd = [
                *pip,
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                *isolation,
                "-d",
                str(into),
                f"{SDIST_NAME}=={SDIST_VERSION}",
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, env=env)
            sdist = into / SDIST_FILE
            if sdist.exists():
                return sdist
            errors.append(f"$ {' '.join(cmd)}\n{result.stdout[-800:]}{result.stderr[-1500:]}")
    fail("pip download failed:\n" + "\n".join(errors))
    raise AssertionError  # unreachable


def extract_vendor(sdist: Path, dest: Path) -> None:
    with tarfile.open(sdist, "r:gz") as archive:
        members = []
        for member in archive.getmembers():
            if not member.name.startswith(VENDOR_PREFIX):
                continue
            relative = member.name[len(VENDOR_PREFIX) :]
            if not relative or relative.startswith("/") or ".." in Path(relative).parts:
                continue
            if not (member.isfile() or member.isdir()):
                continue
            member.name = relative
            members.append(member)
        if not members:
            fail(f"{sdist.name} holds no {VENDOR_PREFIX}")
        archive.extractall(dest, members=members)


def provision() -> Path:
    target = cache_root() / f"llama.cpp-{COMMIT}"
    if (target / MARKER).exists() and (target / "CMakeLists.txt").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".provision-") as tmp:
        tmp_path = Path(tmp)
        local = os.environ.get("A3S_POWER_LLAMA_SDIST")  # an already downloaded sdist
        sdist = Path(local) if local else download_sdist(tmp_path / "download")
        actual = sha256_of(sdist)
        if actual != SDIST_SHA256:
            fail(f"{sdist} has sha256 {actual}, expected {SDIST_SHA256} (tampered or truncated download)")
        staging = tmp_path / "src"
        staging.mkdir()
        extract_vendor(sdist, staging)
        (staging / MARKER).write_text(f"{COMMIT}\n{SDIST_FILE} {SDIST_SHA256}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return target


if __name__ == "__main__":
    print(provision())
