"""Build llama.cpp's own `llama-simple` on this machine, from the source this build used.

The reference for greedy decoding is llama.cpp's tool, built and run here (never a file made on
another machine: its numbers depend on the CPU's instruction set). The executable is cached per
machine under the user cache dir (``~/.cache/a3s-power/llama-simple/<key>``), keyed by the
llama.cpp source, the compiler and the static libraries it links:

1. with a build tree (``build/{wheel_tag}``, left by ``pip install``), `llama-simple` is one
   driver file (examples/simple/simple.cpp) linked against the very libllama/libggml objects the
   extension was compiled from: seconds;
2. without one (a wheel install), llama.cpp's CMake builds its `llama-simple` target from the
   provisioned source with GGML_NATIVE=ON, as our extension is built: minutes, once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _provision_module() -> ModuleType:
    """cmake/provision_llama_cpp.py (not a package): its cache dir and file digest are ours too."""
    spec = importlib.util.spec_from_file_location(
        "provision_llama_cpp", REPO / "cmake" / "provision_llama_cpp.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_provision = _provision_module()
cache_root = _provision.cache_root
sha256_of = _provision.sha256_of


def build_dir() -> Path | None:
    """The persistent scikit-build-core build directory (build/{wheel_tag}), if there is one."""
    candidates = sorted((REPO / "build").glob("cp*"), key=lambda p: p.stat().st_mtime, reverse=True)
    tag = sysconfig.get_config_var("SOABI") or ""
    for cand in candidates:
        if (cand / "CMakeCache.txt").exists() and (not tag or tag.split("-")[1] in cand.name):
            return cand
    return None


def llama_source(bdir: Path | None) -> Path:
    """The llama.cpp source: LLAMA_CPP_SOURCE_DIR > the build's CMakeCache > third_party > provisioned."""
    candidates: list[Path] = []
    if os.environ.get("LLAMA_CPP_SOURCE_DIR"):
        candidates.append(Path(os.environ["LLAMA_CPP_SOURCE_DIR"]))
    if bdir is not None:
        match = re.search(r"^A3S_LLAMA_CPP_DIR:INTERNAL=(.*)$", (bdir / "CMakeCache.txt").read_text(), re.M)
        if match:
            candidates.append(Path(match.group(1)))
    candidates.append(REPO / "third_party" / "llama.cpp")
    for cand in candidates:
        if (cand / "examples/simple/simple.cpp").exists():
            return cand
    # the same pinned sdist the build provisions from (cached per user; a no-op when present)
    out = subprocess.run(
        [sys.executable, str(REPO / "cmake" / "provision_llama_cpp.py")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(out)


def _compiler() -> tuple[str, str]:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or "c++"
    version = subprocess.run([cxx, "--version"], check=True, capture_output=True, text=True).stdout
    return cxx, version


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _link_against_build(bdir: Path, src: Path, cxx: str, version: str) -> Path | None:
    lib = bdir / "third_party" / "llama.cpp"
    libs = [
        lib / "src/libllama.a",
        lib / "ggml/src/libggml.a",
        lib / "ggml/src/libggml-cpu.a",
        lib / "ggml/src/libggml-base.a",
    ]
    if not all(p.exists() for p in libs):
        return None
    driver = src / "examples/simple/simple.cpp"
    key = _digest("link", str(src), driver.read_bytes(), cxx, version, *(sha256_of(p) for p in libs))
    out = cache_root() / "llama-simple" / key / "llama-simple"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    cmd = [
        cxx,
        "-O2",
        "-std=c++17",
        "-I",
        str(src / "include"),
        "-I",
        str(src / "ggml/include"),
        str(driver),
        "-o",
        str(tmp),
        "-Wl,--start-group",
        *map(str, libs),
        "-Wl,--end-group",
        "-fopenmp",
        "-lpthread",
        "-ldl",
        "-lm",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    tmp.replace(out)
    return out


def _cmake_build(src: Path, cxx: str, version: str) -> Path:
    key = _digest("cmake", str(src), (src / "examples/simple/simple.cpp").read_bytes(), cxx, version)
    root = cache_root() / "llama-simple" / key
    out = root / "llama-simple"
    if out.exists():
        return out
    bdir = root / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    launcher = (
        ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
        if shutil.which("ccache")
        else []
    )
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    subprocess.run(
        [
            "cmake",
            "-S",
            str(src),
            "-B",
            str(bdir),
            *gen,
            *launcher,
            f"-DCMAKE_CXX_COMPILER={cxx}",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_SHARED_LIBS=OFF",
            "-DGGML_NATIVE=ON",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_OPENSSL=OFF",
            "-DLLAMA_BUILD_SERVER=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    jobs = str(os.cpu_count() or 2)
    subprocess.run(
        ["cmake", "--build", str(bdir), "--target", "llama-simple", "-j", jobs],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    built = next(bdir.rglob("llama-simple"))
    shutil.copy2(built, out)
    shutil.rmtree(bdir, ignore_errors=True)
    return out


def build_llama_simple() -> Path:
    """The cached `llama-simple` for this machine, built now if missing."""
    bdir = build_dir()
    src = llama_source(bdir)
    cxx, version = _compiler()
    if bdir is not None:
        linked = _link_against_build(bdir, src, cxx, version)
        if linked is not None:
            return linked
    return _cmake_build(src, cxx, version)


def run_llama_simple(model: Path, prompt: str, n_predict: int, exe: Path | None = None) -> str:
    """llama-simple's stdout: the prompt's pieces, then the generated text."""
    exe = exe or build_llama_simple()
    proc = subprocess.run(
        [str(exe), "-m", str(model), "-n", str(n_predict), prompt],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return proc.stdout.decode("utf-8", errors="replace")
