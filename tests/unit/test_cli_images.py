"""Image paths in CLI prompts (`a3s-power run <vision model> "describe ./cat.png"`), as Ollama's CLI."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from a3s_power.cli._images import extract_images


def test_paths_become_images_and_leave_the_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cat.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "dog photo.jpg").write_bytes(b"jpeg bytes")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    text, images = extract_images(f"describe ./cat.png and {tmp_path}/dog\\ photo.jpg please", out)
    assert text == "describe  and  please"
    assert [base64.b64decode(i) for i in images] == [b"\x89PNG fake", b"jpeg bytes"]
    assert "Added image './cat.png'" in out.getvalue()


def test_missing_files_and_other_extensions_stay_text(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    prompt = f"look at ./nowhere.png and {tmp_path}{os.sep}notes.txt"
    assert extract_images(prompt) == (prompt, [])


def test_the_repl_sends_a_turns_images_with_its_message() -> None:
    from a3s_power.cli.repl import Session

    session = Session(model="smol-vision", capabilities=["completion", "vision"])
    request = session.chat_request("what is it?", None, ["aW1n"])
    assert request["messages"][-1] == {"role": "user", "content": "what is it?", "images": ["aW1n"]}
    assert "images" not in session.chat_request("plain")["messages"][-1]
