"""`a3s-power run <vision model> "describe ./cat.png"`: the path is read, removed from the prompt and
sent as an image, as Ollama's CLI does (the prompt eval count grows by the image's tokens)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from live_server import LiveServer

from conftest import VISION_MODEL
from fixtures.vlm import N_IMAGE_TOKENS, sample_image

pytestmark = pytest.mark.timeout(300)


def _run(server: LiveServer, cwd: Path, prompt: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OLLAMA_MODELS": str(server.settings.models_root), "OLLAMA_HOST": server.url}
    return subprocess.run(
        [sys.executable, "-m", "a3s_power", "run", VISION_MODEL, prompt, "--verbose", "-n", "2",
         "--temperature", "0"],
        capture_output=True, text=True, timeout=240, env=env, cwd=cwd,
    )  # fmt: skip


def _prompt_count(stderr: str) -> int:
    match = re.search(r"^prompt eval count:\s+(\d+) token\(s\)$", stderr, re.MULTILINE)
    assert match, stderr
    return int(match.group(1))


def test_run_sends_image_paths_in_the_prompt(vision_server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(sample_image(31))
    with_image = _run(vision_server, tmp_path, "describe ./cat.png")
    without = _run(vision_server, tmp_path, "describe")
    assert with_image.returncode == 0 and without.returncode == 0, with_image.stderr + without.stderr
    assert "Added image './cat.png'" in with_image.stderr
    assert _prompt_count(with_image.stderr) - _prompt_count(without.stderr) == N_IMAGE_TOKENS
