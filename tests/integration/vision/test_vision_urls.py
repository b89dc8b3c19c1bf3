"""http(s) image URLs (A3S_POWER_IMAGE_URLS): fetched with a size cap and a time limit, never from
loopback / private addresses unless explicitly allowed (here: allowed, to serve pictures from a local
HTTP server; the refusal itself is checked on the resolver)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest
from live_server import LiveServer, server_settings

from a3s_power.errors import InvalidRequest
from a3s_power.service.images import fetch_image
from fixtures.vlm import N_IMAGE_TOKENS, sample_image

pytestmark = pytest.mark.timeout(300)
PICTURE = sample_image(21)


class _Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/cat.png":
            body = PICTURE
        elif self.path == "/big.png":
            body = PICTURE + b"\0" * 5000
        elif self.path == "/slow.png":
            time.sleep(3)
            body = PICTURE
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/cat.png")
            self.end_headers()
            return
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def images_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def url_server(
    tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path, mmproj_path: Path
) -> Iterator[LiveServer]:
    from a3s_power.store.create import CreateRequest, create_events

    root = tmp_path_factory.mktemp("vision-urls") / "models"
    settings = server_settings(root, image_urls=True, image_url_allow_private=True, image_url_timeout=2.0,
                               image_url_max_bytes=len(PICTURE) + 100)  # fmt: skip
    live = LiveServer(settings)
    files = {smollm2_path.name: live.store.add_blob_file(smollm2_path).digest,
             mmproj_path.name: live.store.add_blob_file(mmproj_path).digest}  # fmt: skip
    for _ in create_events(live.store, CreateRequest(model="smol-vision", files=files)):
        pass
    yield live
    live.stop()


def _ask(server: LiveServer, url: str):  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120, max_retries=0)
    return client.chat.completions.create(
        model="smol-vision", max_tokens=2, temperature=0,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is it?"},  # type: ignore[list-item,misc]
                                               {"type": "image_url", "image_url": {"url": url}}]}],
    )  # fmt: skip


def test_an_http_image_is_fetched_like_a_data_url(url_server: LiveServer, images_url: str) -> None:
    import base64

    fetched = _ask(url_server, images_url + "/cat.png")
    inline = _ask(url_server, "data:image/png;base64," + base64.b64encode(PICTURE).decode())
    client = openai.OpenAI(base_url=url_server.url + "/v1", api_key="unused", max_retries=0)
    plain = client.chat.completions.create(
        model="smol-vision",
        max_tokens=2,
        temperature=0,
        messages=[{"role": "user", "content": "What is it?"}],
    )
    assert fetched.usage and inline.usage and plain.usage
    assert fetched.usage.prompt_tokens - plain.usage.prompt_tokens == N_IMAGE_TOKENS
    assert fetched.choices[0].message.content == inline.choices[0].message.content
    assert _ask(url_server, images_url + "/moved").usage.prompt_tokens == fetched.usage.prompt_tokens  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "message"),
    [("/big.png", "over"), ("/slow.png", "took over 2 s"), ("/missing.png", "HTTP 404")],
)
def test_url_limits_are_400s(url_server: LiveServer, images_url: str, path: str, message: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        _ask(url_server, images_url + path)
    assert "image 1:" in str(exc.value) and message in str(exc.value)
    assert httpx.get(url_server.url + "/api/version", timeout=10).status_code == 200


def test_loopback_and_private_hosts_are_refused() -> None:
    for url in (
        "http://127.0.0.1:9/x.png",
        "http://10.0.0.1/x.png",
        "http://[::1]/x.png",
        "http://localhost/x.png",
    ):
        with pytest.raises(InvalidRequest, match="loopback, private or reserved"):
            asyncio.run(fetch_image(url, 0, timeout=2, max_bytes=1000, allow_private=False))
