"""The `a3s-power` command line (Cyclopts). One module per command."""

from __future__ import annotations

from a3s_power.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
