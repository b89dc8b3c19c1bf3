"""Model management routes: tags, show, pull, push, create, copy, delete, blobs."""

from __future__ import annotations

from typing import Any

MANAGE_ROUTES: list[Any] = []
