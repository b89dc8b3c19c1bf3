"""Images for vision models: decoded and validated here (Pillow) before anything reaches llama.cpp.

Every image a request carries becomes RGB pixels plus the SHA-256 of its bytes (mtmd's bitmap id:
the prefix cache treats the same picture as the same tokens). A bad image is a 400 that says
which image and why; native code only ever sees well-formed pixel buffers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import secrets
import warnings
from dataclasses import dataclass

from a3s_power.errors import InvalidRequest

# One marker per image in a rendered prompt. Random per process, so text a user sends cannot
# place fake images (what llama-server does with its random media marker).
MEDIA_MARKER = f"<__media_{secrets.token_hex(8)}__>"

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # an encoded image
MAX_IMAGE_PIXELS = 40_000_000  # width x height (Pillow's bomb guard is 89 MP; ours is smaller)
MAX_IMAGE_SIDE = 16384
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP"}


@dataclass(frozen=True, slots=True)
class DecodedImage:
    width: int
    height: int
    rgb: bytes  # width * height * 3
    digest: str  # SHA-256 hex of the encoded bytes

    def native(self) -> tuple[int, int, bytes, str]:
        return (self.width, self.height, self.rgb, self.digest)


def _bad(index: int, why: str) -> InvalidRequest:
    return InvalidRequest(f"image {index + 1}: {why}")


def decode_base64_image(data: str, index: int = 0) -> bytes:
    """Ollama's `images` entry / an OpenAI or Anthropic base64 payload: standard base64, a
    `data:image/...;base64,` prefix accepted (Ollama itself rejects it)."""
    text = data.strip()
    if text.startswith("data:"):
        head, sep, rest = text.partition(",")
        if not sep or ";base64" not in head:
            raise _bad(index, "a data URL must be base64-encoded (data:image/png;base64,...)")
        text = rest
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(index, "invalid base64 data") from None
    if not raw:
        raise _bad(index, "the image is empty")
    return raw


def decode_image(data: bytes, index: int = 0) -> DecodedImage:
    """Decode one encoded image (PNG, JPEG, WebP, GIF's first frame, BMP) to RGB, or raise a 400."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise _bad(index, "the image is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise _bad(index, f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            fmt = im.format or ""
            if fmt not in FORMATS:
                raise _bad(
                    index, f"unsupported image format {fmt or 'unknown'} (PNG, JPEG, WebP, GIF or BMP)"
                )
            width, height = im.size
            if width <= 0 or height <= 0:
                raise _bad(index, f"the image has no pixels ({width}x{height})")
            if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                raise _bad(index, f"the image is {width}x{height}; the limit is {MAX_IMAGE_SIDE} px a side "
                                  f"and {MAX_IMAGE_PIXELS} pixels")  # fmt: skip
            im.seek(0)  # an animation: its first frame
            rgb = im.convert("RGB")
            pixels = rgb.tobytes()
    except InvalidRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bad(index, f"the image's dimensions are too large ({exc})") from None
    except UnidentifiedImageError:
        raise _bad(
            index, "the data is not an image in a supported format (PNG, JPEG, WebP, GIF or BMP)"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise _bad(index, f"the image is corrupt or truncated ({exc})") from None
    if len(pixels) != width * height * 3:
        raise _bad(index, "the image could not be decoded to RGB")
    return DecodedImage(width, height, pixels, hashlib.sha256(data).hexdigest())


def decode_images(images: list[bytes]) -> list[DecodedImage]:
    return [decode_image(data, i) for i, data in enumerate(images)]
