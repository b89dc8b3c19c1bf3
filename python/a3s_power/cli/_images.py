"""Image paths typed in a prompt, as Ollama's CLI picks them up for vision models: a path (./x.png,
/abs/x.jpg, ~ not expanded, file://…) ending in .jpg/.jpeg/.png/.webp is read, removed from the text
and sent as an image."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TextIO

from a3s_power.cli._client import ClientError

# Ollama's cmd/interactive.go extractFileNames: (?:[a-zA-Z]:)?(?:\./|/|\\)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp)\b
_PATH = re.compile(r"(?:file://)?(?:[a-zA-Z]:)?(?:\./|/|\\)[\S\\ ]+?\.(?i:jpg|jpeg|png|webp)\b")
MAX_FILE_BYTES = 100 * 1024 * 1024


def extract_images(text: str, out: TextIO | None = None) -> tuple[str, list[str]]:
    """(the prompt without the image paths, the images base64-encoded). A path that is not a
    readable file stays in the text (it may be prose)."""
    images: list[str] = []
    for match in _PATH.findall(text):
        name = match.removeprefix("file://").replace("\\ ", " ")
        path = Path(name)
        if not path.is_file():
            continue
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ClientError(f"file size exceeds maximum limit (100MB): {name}")
        images.append(base64.b64encode(path.read_bytes()).decode())
        text = text.replace(match, "")
        if out is not None:
            out.write(f"Added image '{name}'\n")
    return text.strip(), images
