"""The checked-in `_native.pyi` must match the compiled module (regenerate with pybind11-stubgen)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

STUB = Path(__file__).resolve().parents[2] / "python" / "a3s_power" / "_native.pyi"


def test_stub_matches_the_extension(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", "a3s_power._native", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    generated = (tmp_path / "a3s_power" / "_native.pyi").read_text()
    assert generated == STUB.read_text(), (
        "python/a3s_power/_native.pyi is stale: run `pybind11-stubgen a3s_power._native -o /tmp/stubs` "
        "and copy /tmp/stubs/a3s_power/_native.pyi to python/a3s_power/"
    )
