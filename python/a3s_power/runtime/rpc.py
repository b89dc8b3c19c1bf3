"""ggml RPC workers (`a3s-power rpc-server`) as devices of this server (`serve --rpc`).

ggml's RPC client aborts the process when it cannot reach a worker, so every worker is probed here
first (TCP connect + the protocol's HELLO) and a worker that is down is a load error naming it.
A worker serves one client connection at a time; this process holds one connection per worker
for as long as a model uses it, so a worker already in use is not probed again.

When a worker's connection dies during generation (see cpp/core/rpc_abort_guard.h), the engines
using it end their requests and are reloaded; a worker lost that way is left out of the reload
while it stays unreachable (the model then runs on what is reachable), and a fresh probe puts it
back once it answers again.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
import types
from dataclasses import dataclass, field
from typing import Any

from a3s_power.errors import ModelLoadError

log = logging.getLogger(__name__)

RPC_CMD_HELLO = 14
PROBE_TIMEOUT = 5.0


class RpcWorkerError(ModelLoadError):
    """A worker that cannot be used: unreachable, busy with another client, another protocol."""


def parse_endpoint(text: str) -> str:
    """`host:port` checked as ggml's client needs it (IPv4 address or name, port 1-65535)."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port:
        raise ValueError(f"invalid RPC endpoint {text!r}: expected host:port")
    if host.startswith("["):
        raise ValueError(f"invalid RPC endpoint {text!r}: ggml's RPC transport is IPv4 only")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid RPC endpoint {text!r}: port must be 1-65535")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not all(part and (part.isalnum() or "-" in part or "_" in part) for part in host.split(".")):
            raise ValueError(f"invalid RPC endpoint {text!r}: bad host {host!r}") from None
    return f"{host}:{int(port)}"


def parse_endpoints(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """A comma-separated list (`--rpc` / A3S_POWER_RPC) or a list of endpoints, deduplicated."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [i for v in value for i in v.split(",")]
    out: list[str] = []
    for item in items:
        if item.strip():
            endpoint = parse_endpoint(item)
            if endpoint not in out:
                out.append(endpoint)
    return tuple(out)


def _native_module() -> types.ModuleType:
    from a3s_power import _native  # imported late: config parses endpoints without the engine

    return _native


def protocol() -> tuple[int, int, int]:
    major, minor, patch = _native_module().rpc_protocol_version()
    return int(major), int(minor), int(patch)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed the connection")
        data += chunk
    return data


def probe(endpoint: str, timeout: float = PROBE_TIMEOUT) -> tuple[int, int, int]:
    """Connect and say HELLO; the worker's protocol version. Raises RpcWorkerError."""
    host, _, port = endpoint.rpartition(":")
    ours = ".".join(map(str, protocol()))
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except TimeoutError:
        raise RpcWorkerError(f"RPC worker {endpoint} is not reachable: connection timed out") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RpcWorkerError(
            f"RPC worker {endpoint} is not reachable: {reason.lower()} "
            "(is `a3s-power rpc-server` running there?)"
        ) from None
    try:
        size = int(_native_module().rpc_hello_request_size())
        sock.sendall(struct.pack("<BQ", RPC_CMD_HELLO, size) + bytes(size))
        (n,) = struct.unpack("<Q", _recv_exact(sock, 8))
        if n < 3 or n > 4096:
            raise ConnectionError(f"sent a {n}-byte HELLO reply")
        reply = _recv_exact(sock, n)
    except TimeoutError:
        raise RpcWorkerError(
            f"RPC worker {endpoint} did not answer the handshake within {timeout:g} s "
            "(it serves one client at a time: is another server using it?)"
        ) from None
    except (ConnectionError, OSError) as exc:
        raise RpcWorkerError(
            f"RPC worker {endpoint} failed the handshake ({exc}); is it an RPC worker of protocol {ours}?"
        ) from None
    finally:
        sock.close()
    theirs = (reply[0], reply[1], reply[2])
    if theirs[0] != protocol()[0] or theirs[1] > protocol()[1]:
        raise RpcWorkerError(
            f"RPC worker {endpoint} speaks protocol {'.'.join(map(str, theirs))}; this build speaks {ours}"
        )
    return theirs


def reachable(endpoint: str, timeout: float = 1.0) -> bool:
    """A plain TCP connect (no handshake: a worker busy with our own connection still accepts)."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class WorkerPool:
    """The workers this process's models use, and the failure count each was last used under."""

    in_use: dict[str, int] = field(default_factory=dict)
    failures_at_use: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prepare(self, endpoints: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(the endpoints to load on, those left out). A worker that is down is an error naming
        it, unless its connection was lost under a model of ours: then it is left out."""
        usable: list[str] = []
        dropped: list[str] = []
        failures = int(_native_module().rpc_failure_count())
        for endpoint in endpoints:
            with self._lock:
                busy = self.in_use.get(endpoint, 0) > 0
                lost = endpoint in self.failures_at_use and failures > self.failures_at_use[endpoint]
            if busy:
                # this process holds the worker's one client connection (another loaded model):
                # a HELLO probe would wait behind it, so only check that the worker is up; the
                # load reuses that connection
                if reachable(endpoint):
                    usable.append(endpoint)
                    continue
                if not lost:
                    raise RpcWorkerError(
                        f"RPC worker {endpoint} is not reachable (it was in use by this server)"
                    )
                log.warning("RPC worker %s is not reachable; loading without it", endpoint)
                dropped.append(endpoint)
                continue
            try:
                probe(endpoint)
            except RpcWorkerError as exc:
                if not lost:
                    raise
                log.warning("%s; loading without it", exc)
                dropped.append(endpoint)
                continue
            with self._lock:
                self.failures_at_use.pop(endpoint, None)
            usable.append(endpoint)
        return tuple(usable), tuple(dropped)

    def acquire(self, endpoints: tuple[str, ...]) -> None:
        failures = int(_native_module().rpc_failure_count())
        with self._lock:
            for endpoint in endpoints:
                self.in_use[endpoint] = self.in_use.get(endpoint, 0) + 1
                self.failures_at_use[endpoint] = failures

    def release(self, endpoints: tuple[str, ...]) -> None:
        with self._lock:
            for endpoint in endpoints:
                self.in_use[endpoint] = max(0, self.in_use.get(endpoint, 0) - 1)


POOL = WorkerPool()


def device_summary(memory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """llama.cpp's memory breakdown per buffer type, summed per device: what `ps` and `show` list."""
    sizes: dict[str, dict[str, int]] = {}
    descriptions: dict[str, str] = {}
    for entry in memory:
        name = str(entry["device"])
        descriptions[name] = str(entry["description"])
        row = sizes.setdefault(name, {"weights": 0, "kv_cache": 0, "compute": 0})
        row["weights"] += int(entry["model"])
        row["kv_cache"] += int(entry["context"])
        row["compute"] += int(entry["compute"])
    out: list[dict[str, Any]] = []
    for name, row in sizes.items():
        device: dict[str, Any] = {"name": name, "size": sum(row.values()), **row}
        if name.startswith("RPC"):
            device["endpoint"] = descriptions[name]
        else:
            device["description"] = descriptions[name]
        out.append(device)
    return out


class RpcServeError(RuntimeError):
    """The RPC worker could not start (busy port, bad address, unknown device)."""


def serve_worker(host: str, port: int, cache: str, threads: int, devices: list[str], mem_bytes: int) -> None:
    """Serve this machine's backend to remote `serve` processes; blocks for the life of the process."""
    native = _native_module()
    try:
        native.rpc_serve(host, port, cache, threads, devices, mem_bytes)
    except native.RpcError as exc:
        raise RpcServeError(str(exc)) from None
