"""The llama.cpp provisioning script: cache reuse and refusal of a tampered sdist."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "cmake" / "provision_llama_cpp.py"


def run(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300)


def fake_sdist(path: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        data = b"cmake_minimum_required(VERSION 3.14)\n"
        info = tarfile.TarInfo("llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_tampered_sdist_stops_with_advice(tmp_path):
    sdist = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    fake_sdist(sdist)
    proc = run({"A3S_POWER_BUILD_CACHE": str(tmp_path / "cache"), "A3S_POWER_LLAMA_SDIST": str(sdist)})
    assert proc.returncode == 1
    assert "expected 832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e" in proc.stderr
    assert "git submodule update --init" in proc.stderr
    assert not (tmp_path / "cache" / "llama.cpp-0c1e57098bba43ac29e6e3b677cdceebdd22334f").exists()


def test_existing_cache_is_reused_without_download(tmp_path):
    cache = tmp_path / "cache"
    target = cache / "llama.cpp-0c1e57098bba43ac29e6e3b677cdceebdd22334f"
    target.mkdir(parents=True)
    (target / "CMakeLists.txt").write_text("# provisioned\n")
    (target / ".a3s-power-provisioned").write_text("x\n")
    # a bogus sdist path proves nothing is downloaded or checked when the cache is complete
    proc = run(
        {"A3S_POWER_BUILD_CACHE": str(cache), "A3S_POWER_LLAMA_SDIST": str(tmp_path / "missing.tar.gz")}
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(target)
