"""`a3s-power rpc-server`: serve this machine's backend to remote `serve --rpc` processes through
ggml's RPC protocol (llama.cpp's rpc-server). The protocol has no authentication or encryption."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

from cyclopts import Parameter

from a3s_power.cli.app import app

LOOPBACK = ("127.0.0.1", "localhost")
WARNING = """
!!! WARNING: binding the RPC server to {host}, not 127.0.0.1.
!!! ggml's RPC protocol has no authentication and no encryption: anyone who can reach
!!! {host}:{port} can run computations on this machine and read what it holds.
!!! Use it only on a private network you trust (see docs/scale-out.md).
"""


@app.command(name="rpc-server")
def rpc_server(
    *,
    host: str = "127.0.0.1",
    port: int = 50052,
    mem: int = 0,
    threads: int = 0,
    cache: str = "",
    device: Annotated[list[str] | None, Parameter(consume_multiple=True)] = None,
) -> None:
    """Serve this machine's compute to other A3S Power servers (ggml RPC worker).

    Parameters
    ----------
    host
        IPv4 address to bind; anything but 127.0.0.1 prints a warning (no authentication).
    port
        Port to bind.
    mem
        Memory each device advertises, in MiB (serve's default split follows it; not a hard cap).
    threads
        CPU threads (0: half the hardware threads).
    cache
        Directory for ggml's tensor cache (large weights sent once are kept there and reused).
    device
        ggml device names to serve (e.g. CPU, CUDA0; comma-separated or repeated); default: the
        accelerators, else the CPU.
    """
    from a3s_power.runtime import rpc

    if host == "localhost":
        host = "127.0.0.1"
    if not 0 < port < 65536:
        sys.exit(f"Error: invalid port {port} (must be 1-65535)")
    if mem < 0 or threads < 0:
        sys.exit("Error: --mem and --threads must not be negative")
    devices = [d.strip() for item in device or [] for d in item.split(",") if d.strip()]
    if host not in LOOPBACK:
        print(WARNING.format(host=host, port=port), file=sys.stderr, flush=True)
    # the server blocks in C++ for the life of the process: let SIGINT/SIGTERM end it at once
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    major, minor, patch = rpc.protocol()
    print(
        f"a3s-power rpc-server on {host}:{port} (ggml RPC protocol {major}.{minor}.{patch})",
        file=sys.stderr,
        flush=True,
    )
    try:
        rpc.serve_worker(host, port, cache, threads, devices, mem * 1024 * 1024)
    except rpc.RpcServeError as exc:
        sys.exit(f"Error: {exc}")
