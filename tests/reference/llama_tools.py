"""Build llama.cpp's own `llama-simple` against the very static libraries this build compiled.

The reference for greedy decoding is llama.cpp's tool, run on the same source, objects and
threads: `llama-simple` is one driver file (examples/simple/simple.cpp), so linking it against
our build's libllama/libggml takes seconds instead of a second llama.cpp build.
"""

from __future__ import annotations

import re
import subprocess
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    """The persistent scikit-build-core build directory (build/{wheel_tag})."""
    candidates = sorted((REPO / "build").glob("cp*"), key=lambda p: p.stat().st_mtime, reverse=True)
    tag = sysconfig.get_config_var("SOABI") or ""
    for cand in candidates:
        if (cand / "CMakeCache.txt").exists() and (not tag or tag.split("-")[1] in cand.name):
            return cand
    raise FileNotFoundError(f"no CMake build directory under {REPO / 'build'}; run `pip install .` first")


def llama_source(bdir: Path) -> Path:
    cache = (bdir / "CMakeCache.txt").read_text()
    match = re.search(r"^A3S_LLAMA_CPP_DIR:INTERNAL=(.*)$", cache, re.M)
    if not match:
        raise FileNotFoundError("A3S_LLAMA_CPP_DIR missing from CMakeCache.txt")
    return Path(match.group(1))


def build_llama_simple(bdir: Path | None = None) -> Path:
    bdir = bdir or build_dir()
    out = bdir / "reference-tools" / "llama-simple"
    src = llama_source(bdir)
    lib = bdir / "third_party" / "llama.cpp"
    libs = [
        lib / "src/libllama.a",
        lib / "ggml/src/libggml.a",
        lib / "ggml/src/libggml-cpu.a",
        lib / "ggml/src/libggml-base.a",
    ]
    inputs = [src / "examples/simple/simple.cpp", *libs]
    if out.exists() and all(out.stat().st_mtime >= p.stat().st_mtime for p in inputs):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "g++",
        "-O2",
        "-std=c++17",
        "-I",
        str(src / "include"),
        "-I",
        str(src / "ggml/include"),
        str(src / "examples/simple/simple.cpp"),
        "-o",
        str(out),
        "-Wl,--start-group",
        *map(str, libs),
        "-Wl,--end-group",
        "-fopenmp",
        "-lpthread",
        "-ldl",
        "-lm",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def run_llama_simple(model: Path, prompt: str, n_predict: int, exe: Path | None = None) -> str:
    """Generated text only (llama-simple echoes the prompt's pieces first; the caller strips them)."""
    exe = exe or build_llama_simple()
    proc = subprocess.run(
        [str(exe), "-m", str(model), "-n", str(n_predict), prompt],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return proc.stdout.decode("utf-8", errors="replace")
