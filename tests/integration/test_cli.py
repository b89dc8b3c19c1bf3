"""The console script on real models."""

from __future__ import annotations

import subprocess
import sys

import pytest

from a3s_power import __version__


@pytest.fixture(autouse=True)
def _no_server_at_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` is a client of the server at OLLAMA_HOST when one answers; these test its in-process
    kind, so OLLAMA_HOST names a port nothing listens on."""
    from _store_helpers import free_port

    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")


def cli(*args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "a3s_power", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == __version__


def test_run_streams_a_reply(smollm2_path):
    proc = cli(
        "run", str(smollm2_path), "--prompt", "What is 2+2?", "--temperature", "0", "--num-predict", "16"
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip()) > 0


def test_run_default_model_by_name():
    proc = cli(
        "run", "gemma3:270m", "--prompt", "Say hello.", "--temperature", "0", "--seed", "1", "-n", "12"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert proc.stderr == ""  # llama.cpp's log stays in `logging` unless --verbose


def test_run_verbose_prints_timings_and_llama_warnings():
    proc = cli("run", "gemma3:270m", "-p", "Hi", "--temperature", "0", "-n", "4", "--verbose", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "eval count:           4 token(s)" in proc.stderr
    assert "a3s_power.llama: llama_kv_cache_iswa: using full-size SWA cache" in proc.stderr


def test_run_greedy_is_reproducible(smollm2_path):
    args = ("run", str(smollm2_path), "-p", "Name a planet.", "--temperature", "0", "-n", "12")
    assert cli(*args).stdout == cli(*args).stdout


def test_run_unknown_model_is_pulled_and_a_missing_one_is_a_clear_error(tmp_path, smollm2_path):
    import os

    from a3s_power.store.manifest import MEDIA_MODEL, MEDIA_PARAMS
    from fake_registry import FakeRegistry

    registry = FakeRegistry()
    try:
        registry.add_model(
            "library/smol",
            "latest",
            [(MEDIA_MODEL, smollm2_path.read_bytes()), (MEDIA_PARAMS, b'{"stop": ["<|im_end|>"]}')],
        )
        env = {
            **os.environ,
            "OLLAMA_MODELS": str(tmp_path / "models"),
            "A3S_POWER_OFFLINE_FALLBACK": "0",
            "A3S_POWER_REGISTRY_ENDPOINTS": f"registry.ollama.ai={registry.url}",
        }
        args = [sys.executable, "-m", "a3s_power", "run"]
        missing = subprocess.run(
            [*args, "no-such-model:7b", "-p", "hi"], capture_output=True, text=True, timeout=180, env=env
        )
        assert missing.returncode == 1
        assert "Error: pull model manifest: file does not exist" in missing.stderr

        flags = ["-p", "Name a planet.", "--temperature", "0", "-n", "12"]
        pulled = subprocess.run([*args, "smol", *flags], capture_output=True, text=True, timeout=180, env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert "pulling manifest" in pulled.stderr and "success" in pulled.stderr
        assert pulled.stdout == cli("run", str(smollm2_path), *flags).stdout and pulled.stdout.strip()
        blob_requests = len(registry.requests("blob"))
        again = subprocess.run([*args, "smol", *flags], capture_output=True, text=True, timeout=180, env=env)
        assert again.stdout == pulled.stdout and "pulling" not in again.stderr
        assert len(registry.requests("blob")) == blob_requests  # the second run used the store
    finally:
        registry.stop()


def test_run_bad_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_text("nope")
    proc = cli("run", str(bad), "--prompt", "hi")
    assert proc.returncode == 1
    assert "not a GGUF" in proc.stderr


def test_run_a_model_from_the_store(tmp_path, smollm2_path):
    import os

    from a3s_power.store.create import create_events, stage_modelfile_request
    from a3s_power.store.modelfile import parse_modelfile
    from a3s_power.store.store import ModelStore

    store = ModelStore(tmp_path / "models")
    request = stage_modelfile_request(
        store, "Smol:Test", parse_modelfile(f"FROM {smollm2_path}\n").to_request(smollm2_path.parent)
    )
    assert list(create_events(store, request))[-1] == {"status": "success"}
    env = {**os.environ, "OLLAMA_MODELS": str(tmp_path / "models")}
    args = ["-p", "Name a planet.", "--temperature", "0", "-n", "12"]
    by_name = subprocess.run(
        [sys.executable, "-m", "a3s_power", "run", "smol:test", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    by_path = cli("run", str(smollm2_path), *args)
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout == by_path.stdout and by_name.stdout.strip()
