"""Layering rules the architecture promises, checked on the source tree."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "a3s_power"
NATIVE_IMPORT = re.compile(
    r"^\s*(from a3s_power import _native|import a3s_power\._native|from a3s_power\._native)", re.M
)


def test_only_runtime_imports_the_native_module() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "runtime" and NATIVE_IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_the_store_builds_no_wire_bodies() -> None:
    """The store is below the API: it must not import any API family's modules."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in sorted((PACKAGE / "store").rglob("*.py"))
        if re.search(r"^\s*(from|import) a3s_power\.api", path.read_text(), re.M)
    ]
    assert offenders == []
