"""The `a3s-power` client commands (list, show, cp, rm, create, ps, stop, pull, push) as subprocesses
against a live server whose store holds `smollm2:135m`, reached through OLLAMA_HOST as `ollama` does.

Pulls come from the fake registry; the push round trip needs Debian's docker-registry (skipped without).
"""

from __future__ import annotations

import hashlib
import os
import pty
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer

from _store_helpers import DockerRegistry, free_port, write_tiny_gguf
from fake_registry import FakeRegistry, publish

pytestmark = pytest.mark.timeout(180)

BASE = "smollm2:135m"
Cli = Callable[..., subprocess.CompletedProcess[str]]
NO_SERVER = "Error: could not connect to ollama server, run 'a3s-power serve' to start it\n"


# -- helpers ---------------------------------------------------------------------------------------
def run_cli(port: int, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "a3s_power", *args],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


@pytest.fixture
def cli(server: LiveServer) -> Cli:
    def call(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(server.port, *args, cwd=cwd)

    return call


@pytest.fixture
def registry_env(registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    """The in-process server's pulls of `registry.ollama.ai/...` go to the fake registry."""
    monkeypatch.setenv("A3S_POWER_REGISTRY_ENDPOINTS", f"registry.ollama.ai={registry.url}")
    monkeypatch.setenv("A3S_POWER_OFFLINE_FALLBACK", "0")
    return registry


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def tags(http: httpx.Client) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in http.get("/api/tags").json()["models"]}


def running(http: httpx.Client) -> list[str]:
    return [m["name"] for m in http.get("/api/ps").json()["models"]]


def table(stdout: str) -> list[list[str]]:
    """Cells split on Ollama's 4-space padding."""
    return [re.split(r" {4,}", line.strip()) for line in stdout.splitlines()]


def columns_align(stdout: str) -> None:
    """Every cell starts where its header starts (tablewriter pads columns to a common width)."""
    lines = stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 1] == " " and line[start] != " ", (lines[0], line)


# -- list ------------------------------------------------------------------------------------------
def test_list_prints_ollamas_table(cli: Cli, http: httpx.Client) -> None:
    info = tags(http)[BASE]
    proc = ok(cli("list"))
    rows = table(proc.stdout)
    assert rows[0] == ["NAME", "ID", "SIZE", "MODIFIED"]
    row = next(r for r in rows if r[0] == BASE)
    size_mb = info["size"] // 1_000_000
    assert 10 <= size_mb < 1000, "the expected SIZE below assumes a model of tens of MB"
    assert row[1] == info["digest"][:12]
    assert row[2] == f"{size_mb} MB"
    ago = r"(1 second|\d+ seconds|Less than a second|About a minute|\d+ minutes) ago"
    assert re.fullmatch(ago, row[3]), row
    columns_align(proc.stdout)
    assert proc.stderr == ""


def test_list_filters_by_prefix_and_has_an_alias(cli: Cli) -> None:
    for args in (("list", "smoll"), ("ls", "SMOLL"), ("ls",)):
        rows = table(ok(cli(*args)).stdout)
        assert [r[0] for r in rows[1:]].count(BASE) == 1, args
    assert table(ok(cli("list", "zzz")).stdout) == [["NAME", "ID", "SIZE", "MODIFIED"]]


# -- show ------------------------------------------------------------------------------------------
def test_show_prints_the_default_sections(cli: Cli, http: httpx.Client) -> None:
    reply = http.post("/api/show", json={"model": BASE}).json()
    out = ok(cli("show", BASE)).stdout
    titles = [line.strip() for line in out.splitlines() if line.startswith("  ") and line[2] != " "]
    assert titles == ["Model", "Capabilities", "Parameters"]
    model = out.split("  Model\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^    architecture {8}llama +$", model, re.M), model
    assert re.search(
        rf"^    parameters {{10}}{re.escape(reply['details']['parameter_size'])} +$", model, re.M
    )
    assert re.search(r"^    context length {6}8192 +$", model, re.M), model
    assert re.search(r"^    embedding length {4}576 +$", model, re.M), model
    assert re.search(rf"^    quantization {{8}}{reply['details']['quantization_level']} +$", model, re.M)
    assert "  Capabilities\n    completion    \n\n" in out
    assert '  Parameters\n    stop    "<|im_end|>"    \n\n' in out
    assert "Metadata" not in out

    verbose = ok(cli("show", "-v", BASE)).stdout
    assert "  Metadata\n" in verbose
    assert re.search(r"^    general\.architecture +llama +$", verbose, re.M)
    assert re.search(r"^    general\.parameter_count +1\.34515008e\+08 +$", verbose, re.M)  # Go's %g


def test_show_single_fields(cli: Cli, http: httpx.Client) -> None:
    reply = http.post("/api/show", json={"model": BASE}).json()
    modelfile = ok(cli("show", BASE, "--modelfile")).stdout
    assert modelfile == reply["modelfile"] + "\n"
    assert modelfile.startswith('# Modelfile generated by "ollama show"\n')
    assert re.search(r"^FROM /.+/blobs/sha256-[0-9a-f]{64}$", modelfile, re.M)
    assert "PARAMETER stop <|im_end|>\n" in modelfile
    assert ok(cli("show", BASE, "--parameters")).stdout == 'stop                           "<|im_end|>"\n'
    template = ok(cli("show", BASE, "--template")).stdout
    assert template == reply["template"] and "<|im_start|>" in template  # printed as is, no newline
    assert ok(cli("show", BASE, "--system")).stdout == ""

    both = cli("show", BASE, "--license", "--template")
    assert both.returncode == 1 and both.stdout == ""
    assert both.stderr == (
        "Error: only one of '--license', '--modelfile', '--parameters', '--system', or '--template' "
        "can be specified\n"
    )


# -- cp / rm ---------------------------------------------------------------------------------------
def test_cp_then_rm(cli: Cli, http: httpx.Client) -> None:
    assert ok(cli("cp", BASE, "smol-copy")).stdout == f"copied '{BASE}' to 'smol-copy'\n"
    assert tags(http)["smol-copy:latest"]["digest"] == tags(http)[BASE]["digest"]
    assert "smol-copy:latest" in [r[0] for r in table(ok(cli("list")).stdout)]

    assert ok(cli("rm", "smol-copy")).stdout == "deleted 'smol-copy'\n"
    assert "smol-copy:latest" not in tags(http)
    assert BASE in tags(http)  # the shared blobs stay


def test_rm_several_and_a_loaded_one(cli: Cli, http: httpx.Client) -> None:
    for name in ("smol-a", "smol-b"):
        ok(cli("cp", BASE, name))
    loaded = http.post("/api/generate", json={"model": "smol-a", "stream": False}).json()
    assert loaded["done_reason"] == "load" and "smol-a:latest" in running(http)
    proc = ok(cli("rm", "smol-a", "smol-b"))
    assert proc.stdout == "deleted 'smol-a'\ndeleted 'smol-b'\n"
    assert proc.stderr == ""
    assert "smol-a:latest" not in running(http)  # rm stops it first
    assert not {"smol-a:latest", "smol-b:latest"} & set(tags(http))


def test_cp_and_rm_errors(cli: Cli) -> None:
    missing = cli("rm", "nope")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", "Error: model 'nope' not found\n")
    copy = cli("cp", "nope", "other")
    assert (copy.returncode, copy.stderr) == (1, 'Error: model "nope" not found\n')


# -- create ----------------------------------------------------------------------------------------
def test_create_from_a_modelfile_then_show(
    cli: Cli, http: httpx.Client, smollm2_path: Path, tmp_path: Path
) -> None:
    modelfile = tmp_path / "Smolfile"
    modelfile.write_text(
        f"FROM {smollm2_path}\n"
        "PARAMETER temperature 0.2\n"
        'PARAMETER stop "<|im_end|>"\n'
        'SYSTEM """You are terse.\nAnswer in one word."""\n'
    )
    proc = ok(cli("create", "smol-custom", "-f", str(modelfile)))
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == "gathering model components"
    assert lines[-2:] == ["writing manifest", "success"]
    assert not any(line.startswith("copying file") for line in lines)  # the server had the GGUF blob
    assert any(re.fullmatch(r"using existing layer sha256:[0-9a-f]{64}", line) for line in lines)
    assert any(re.fullmatch(r"creating new layer sha256:[0-9a-f]{64}", line) for line in lines)

    assert "smol-custom:latest" in tags(http)
    shown = ok(cli("show", "smol-custom")).stdout
    assert "  System\n    You are terse.         \n    Answer in one word.    \n\n" in shown
    assert re.search(r"^    temperature    0\.2 +$", shown, re.M), shown
    assert re.search(r'^    stop {11}"<\|im_end\|>" +$', shown, re.M), shown
    assert ok(cli("show", "smol-custom", "--system")).stdout == "You are terse.\nAnswer in one word."
    params = http.post("/api/show", json={"model": "smol-custom"}).json()["parameters"]
    assert "temperature                    0.2" in params
    ok(cli("rm", "smol-custom"))


def test_create_uploads_missing_blobs_from_the_default_modelfile(
    cli: Cli, http: httpx.Client, server: LiveServer, tmp_path: Path
) -> None:
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    (tmp_path / "Modelfile").write_text("FROM ./tiny.gguf\nTEMPLATE {{ .Prompt }}\nLICENSE MIT\n")
    proc = ok(cli("create", "tiny-made", cwd=tmp_path))
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    lines = proc.stderr.splitlines()
    assert f"copying file {digest} 0%" in lines and f"copying file {digest} 100%" in lines
    assert lines[-1] == "success"
    assert http.head(f"/api/blobs/{digest}").status_code == 200
    reply = http.post("/api/show", json={"model": "tiny-made"}).json()
    assert reply["template"] == "{{ .Prompt }}" and reply["license"] == "MIT"
    assert "  License\n    MIT    \n" in ok(cli("show", "tiny-made")).stdout

    again = ok(cli("create", "tiny-made-2", cwd=tmp_path))  # the blob is there now: no second upload
    assert "copying file" not in again.stderr
    ok(cli("rm", "tiny-made", "tiny-made-2"))


def test_create_errors(cli: Cli, tmp_path: Path) -> None:
    missing = cli("create", "x", "-f", str(tmp_path / "nowhere"))
    assert (missing.returncode, missing.stderr) == (1, "Error: specified Modelfile wasn't found\n")
    bad = tmp_path / "Bad"
    bad.write_text(f"FROM {BASE}\nBOGUS value\n")
    proc = cli("create", "x", "-f", str(bad))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("Error: (line 2): command must be one of")
    unknown = tmp_path / "Unknown"
    unknown.write_text("FROM no-such-base\n")
    proc = cli("create", "x", "-f", str(unknown))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "gathering model components",
        'Error: model "no-such-base" not found, try pulling it first',
    ]


# -- ps / stop -------------------------------------------------------------------------------------
def test_ps_then_stop(cli: Cli, http: httpx.Client) -> None:
    assert http.post("/api/generate", json={"model": BASE, "stream": False}).json()["done_reason"] == "load"
    entry = http.get("/api/ps").json()["models"][0]
    proc = ok(cli("ps"))
    rows = table(proc.stdout)
    assert rows[0] == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert rows[1] == [
        BASE,
        entry["digest"][:12],
        f"{entry['size'] // 1_000_000} MB",
        "100% CPU",
        str(entry["context_length"]),
        "4 minutes from now",
    ]
    columns_align(proc.stdout)
    assert table(ok(cli("ps", "zzz")).stdout) == [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]]

    stopped = ok(cli("stop", BASE))
    assert stopped.stdout == stopped.stderr == ""
    assert running(http) == []
    again = cli("stop", BASE)
    assert (again.returncode, again.stderr) == (1, f'Error: couldn\'t find model "{BASE}" to stop\n')
    nope = cli("stop", "nope")
    assert (nope.returncode, nope.stderr) == (1, 'Error: couldn\'t find model "nope" to stop\n')


def test_ps_shows_forever_for_a_pinned_model(cli: Cli, http: httpx.Client) -> None:
    http.post("/api/generate", json={"model": BASE, "keep_alive": -1, "stream": False})
    try:
        assert table(ok(cli("ps")).stdout)[1][-1] == "Forever"
        ok(cli("stop", "SmolLM2:135m"))  # names match case-insensitively, as the server's do
        assert running(http) == []
    finally:
        http.post("/api/generate", json={"model": BASE, "keep_alive": 0, "stream": False})


# -- pull / push -----------------------------------------------------------------------------------
def test_pull_from_the_registry(
    cli: Cli, http: httpx.Client, registry_env: FakeRegistry, tmp_path: Path
) -> None:
    model = write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    publish(registry_env, model, repo="library/tiny-pulled", tag="q8")
    digest12 = hashlib.sha256(model).hexdigest()[:12]
    proc = ok(cli("pull", "tiny-pulled:q8"))
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == "pulling manifest"
    assert lines[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    bar = next(line for line in lines if line.startswith(f"pulling {digest12}:"))
    assert re.fullmatch(rf"pulling {digest12}: 100% ▕█+▏ +{len(model)} B", bar), bar  # model < 1 KB
    assert bar.count("█") == 80 - len(f"pulling {digest12}: 100%") - 5 - 31  # fills an 80-column line
    assert registry_env.requests("manifest")
    assert "tiny-pulled:q8" in tags(http)

    missing = cli("pull", "not-published")
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "pulling manifest",
        "Error: pull model manifest: file does not exist",
    ]
    invalid = cli("pull", "bad name!")
    assert (invalid.returncode, invalid.stderr) == (1, "Error: invalid model name\n")


def test_pull_on_a_terminal_draws_a_live_frame(
    server: LiveServer, registry_env: FakeRegistry, tmp_path: Path
) -> None:
    model = write_tiny_gguf(tmp_path / "t.gguf").read_bytes()
    publish(registry_env, model, repo="library/tiny-tty")
    master, slave = pty.openpty()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{server.port}", "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "a3s_power", "pull", "tiny-tty"], stderr=slave, stdout=subprocess.PIPE, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO once the child has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    out = b"".join(chunks).decode()
    assert out.startswith("\x1b[?25l") and out.endswith("\x1b[?25h")  # cursor hidden while drawing
    frame = re.split(r"\x1b\[[0-9;?]*[A-Za-z]", out)[-2]  # the last frame, between escape sequences
    lines = [line.rstrip() for line in frame.replace("\r", "").splitlines()]
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    bar = next(
        line for line in lines if line.startswith(f"pulling {hashlib.sha256(model).hexdigest()[:12]}:")
    )
    assert bar.count("█") == 100 - len("pulling 123456789012: 100%") - 5 - 31  # the terminal's width


def test_push_round_trip(
    cli: Cli, http: httpx.Client, docker_registry: DockerRegistry, tmp_path: Path
) -> None:
    (tmp_path / "Modelfile").write_text("FROM ./push.gguf\nSYSTEM pushed\n")
    write_tiny_gguf(tmp_path / "push.gguf")
    target = f"127.0.0.1:{docker_registry.port}/library/tiny-push:v1"
    ok(cli("create", target, cwd=tmp_path))
    proc = ok(cli("push", target, "--insecure"))
    lines = proc.stderr.splitlines()
    assert lines[0] == "retrieving manifest"
    assert lines[-2:] == ["pushing manifest", "success"]
    assert any(re.match(r"pushing [0-9a-f]{12}\.\.\. 100% ", line) for line in lines)
    assert proc.stdout == f"\nYou can find your model at:\n\n\t{target}\n"
    ok(cli("rm", target))
    ok(cli("pull", target, "--insecure"))
    assert http.post("/api/show", json={"model": target}).json()["system"] == "pushed"


def test_push_errors(cli: Cli) -> None:
    proc = cli("push", "127.0.0.1:9/library/ghost", "--insecure")
    assert proc.returncode == 1 and proc.stdout == ""
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("Error: ") and "not found" in last


# -- errors ----------------------------------------------------------------------------------------
def test_unknown_model_errors_use_the_servers_text(cli: Cli) -> None:
    for args in (("show", "nope"), ("show", "nope", "--modelfile")):
        proc = cli(*args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "Error: model 'nope' not found\n"), args


@pytest.mark.parametrize(
    "args",
    [("list",), ("ls",), ("ps",), ("show", BASE), ("pull", BASE), ("push", BASE), ("rm", BASE),
     ("cp", BASE, "x"), ("stop", BASE), ("create", "x")],
)  # fmt: skip
def test_no_server(args: tuple[str, ...], tmp_path: Path) -> None:
    proc = run_cli(free_port(), *args, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", NO_SERVER)
