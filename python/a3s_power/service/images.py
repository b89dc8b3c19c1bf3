"""Images as the API families carry them → the pipeline's image parts (bytes, checked later by
`runtime.media` when the job is planned)."""

from __future__ import annotations

from typing import Any

from a3s_power.errors import InvalidRequest
from a3s_power.runtime.media import decode_base64_image
from a3s_power.service.job import ContentPart


def image_from_url(url: Any, index: int = 0) -> ContentPart:
    """An OpenAI `image_url` / Responses `input_image` URL: a data: URL (base64)."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"image {index + 1}: image_url must be a URL string")
    if url.startswith("data:"):
        return ContentPart("image", data=decode_base64_image(url, index))
    if url.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"image {index + 1}: image URLs are not fetched by this server; send the image inline as a "
            "data: URL (data:image/png;base64,...)"
        )
    raise InvalidRequest(f"image {index + 1}: unsupported image URL scheme (expected data: or http(s):)")


def anthropic_image(block: dict[str, Any], index: int = 0) -> ContentPart:
    """An Anthropic `image` block: a base64 source (or a url source, as image_from_url)."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"image {index + 1}: an image block needs a source")
    kind = source.get("type")
    if kind == "base64":
        data = source.get("data")
        if not isinstance(data, str):
            raise InvalidRequest(f"image {index + 1}: source.data must be a base64 string")
        return ContentPart("image", data=decode_base64_image(data, index))
    if kind == "url":
        return image_from_url(source.get("url"), index)
    raise InvalidRequest(f"image {index + 1}: unsupported image source type {kind!r}")
