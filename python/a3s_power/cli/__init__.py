"""The `a3s-power` command line (Cyclopts). One module per command."""

from __future__ import annotations

from a3s_power.cli.app import app


def main() -> None:
    import sys

    from a3s_power.cli.run import normalize_argv

    app(normalize_argv(sys.argv[1:]))


__all__ = ["app", "main"]
