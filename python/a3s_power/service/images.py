"""Images as the API families carry them → the pipeline's image parts (bytes, checked later by
`runtime.media` when the job is planned)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from a3s_power.errors import InvalidRequest
from a3s_power.runtime.media import decode_base64_image
from a3s_power.service.job import ContentPart

MAX_REDIRECTS = 3


def image_from_url(url: Any, index: int = 0) -> ContentPart:
    """An OpenAI `image_url` / Responses `input_image` URL: a data: URL (base64)."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"image {index + 1}: image_url must be a URL string")
    if url.startswith("data:"):
        return ContentPart("image", data=decode_base64_image(url, index))
    if url.startswith(("http://", "https://")):
        return ContentPart("image", url=url)  # fetched by the pipeline when A3S_POWER_IMAGE_URLS is on
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


def remote_images_refused(index: int) -> InvalidRequest:
    return InvalidRequest(
        f"image {index + 1}: image URLs are not fetched by this server (A3S_POWER_IMAGE_URLS is off); "
        "send the image inline as a data: URL (data:image/png;base64,...)"
    )


async def _public_address(host: str, port: int, index: int, allow_private: bool) -> str:
    """The host's first address, refused when any of its addresses is not a public one."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidRequest(f"image {index + 1}: cannot resolve the image URL's host {host!r}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise InvalidRequest(f"image {index + 1}: cannot resolve the image URL's host {host!r}")
    if not allow_private:
        for address in addresses:
            if not ipaddress.ip_address(address.split("%")[0]).is_global:
                raise InvalidRequest(
                    f"image {index + 1}: the image URL's host {host!r} is a loopback, private or reserved "
                    "address; only public hosts are fetched"
                )
    return addresses[0]


async def fetch_image(url: str, index: int, *, timeout: float, max_bytes: int, allow_private: bool) -> bytes:
    """GET an http(s) image: public addresses only (the connection goes to the address that was
    checked, so DNS cannot switch it), at most `max_bytes`, the whole fetch within `timeout`."""

    async def fetch() -> bytes:
        target = url
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                parts = urlsplit(target)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise InvalidRequest(f"image {index + 1}: unsupported image URL {target[:200]!r}")
                port = parts.port or (443 if parts.scheme == "https" else 80)
                address = await _public_address(parts.hostname, port, index, allow_private)
                host = f"[{address}]" if ":" in address else address
                direct = parts._replace(netloc=f"{host}:{port}").geturl()
                headers = {"Host": parts.netloc.rpartition("@")[2], "Accept": "image/*"}
                extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
                request = client.build_request("GET", direct, headers=headers, extensions=extensions)
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        target = str(httpx.URL(target).join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise InvalidRequest(f"image {index + 1}: fetching the image URL failed (HTTP "
                                             f"{response.status_code})")  # fmt: skip
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > max_bytes:
                            raise InvalidRequest(
                                f"image {index + 1}: the image at the URL is over {max_bytes} bytes"
                            )
                    return bytes(data)
                finally:
                    await response.aclose()
        raise InvalidRequest(f"image {index + 1}: too many redirects fetching the image URL")

    try:
        return await asyncio.wait_for(fetch(), timeout)
    except TimeoutError:
        raise InvalidRequest(f"image {index + 1}: fetching the image URL took over {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"image {index + 1}: fetching the image URL failed ({exc})") from None
