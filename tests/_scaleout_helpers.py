"""nginx in front of A3S Power replicas, from the documented config (docs/deploy/nginx-a3s-power.conf)
with the replica list and the listen address replaced: used by the replica test and the benchmark."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from _store_helpers import free_port

# greedy, fixed length: what the split-vs-local comparisons generate with
GENERATE_OPTIONS = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": 24, "seed": 1}
DOC_CONFIG = Path(__file__).resolve().parents[1] / "docs" / "deploy" / "nginx-a3s-power.conf"


def render_config(upstreams: list[str], listen: str) -> str:
    """The documented http-level config with `upstreams` (host:port) and `listen` filled in."""
    text = DOC_CONFIG.read_text()
    servers = "".join(f"    server {u} max_fails=1 fail_timeout=10s;\n" for u in upstreams)
    text, n = re.subn(r"(?m)^    server 127\.0\.0\.1:\d+ max_fails=1 fail_timeout=10s;\n", "", text)
    assert n >= 1, "the documented config has no server lines to replace"
    text = text.replace("    keepalive 32;\n", servers + "    keepalive 32;\n")
    return re.sub(r"(?m)^    listen [^;]+;", f"    listen {listen};", text)


class Nginx:
    """`nginx -g 'daemon off;'` with a private prefix (pid, logs, temp dirs) under `workdir`."""

    def __init__(self, workdir: Path, upstreams: list[str]) -> None:
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if binary is None:
            raise FileNotFoundError("nginx is not installed (apt-get install -y nginx-light)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        temp = "\n".join(
            f"    {kind}_temp_path {workdir}/{kind}_temp;"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        config = workdir / "nginx.conf"
        config.write_text(
            f"{user}worker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log warn;\n"
            f"events {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n{temp}\n"
            + render_config(upstreams, f"127.0.0.1:{self.port}")
            + "}\n"
        )
        self.workdir = workdir
        self.process = subprocess.Popen(
            [binary, "-p", str(workdir), "-c", str(config), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"nginx exited: {err}")
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("nginx did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
