"""The Cyclopts application object; commands register themselves from their modules."""

from __future__ import annotations

from cyclopts import App

from a3s_power import __version__

app = App(
    name="a3s-power",
    version=__version__,
    help="A3S Power: run and serve local models, a drop-in replacement for Ollama.",
)

from a3s_power.cli import create as _create  # noqa: E402,F401
from a3s_power.cli import models as _models  # noqa: E402,F401
from a3s_power.cli import ps as _ps  # noqa: E402,F401
from a3s_power.cli import rpc_server as _rpc_server  # noqa: E402,F401
from a3s_power.cli import run as _run  # noqa: E402,F401  (registers the command)
from a3s_power.cli import serve as _serve  # noqa: E402,F401
from a3s_power.cli import transfer as _transfer  # noqa: E402,F401
