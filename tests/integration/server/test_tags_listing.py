"""`/api/tags` answers from what it read before while the store is unchanged (issue 12: p50 ≤ 2 ms
with 10 models), so it must never be stale: every create, copy, delete, and any change another
process makes to the manifests, shows in the very next listing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, server_settings

from a3s_power.store.store import ModelStore

pytestmark = pytest.mark.timeout(300)
MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def tags_server(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("tags") / "models"
    live = LiveServer(server_settings(root))
    add_gguf_model(live.store, MODEL, smollm2_path)
    yield live
    live.stop()


def _tags(server: LiveServer) -> dict[str, dict[str, object]]:
    response = httpx.get(server.url + "/api/tags", timeout=30)
    response.raise_for_status()
    return {m["name"]: m for m in response.json()["models"]}


def test_listing_follows_create_copy_delete_at_once(tags_server: LiveServer) -> None:
    url = tags_server.url
    assert list(_tags(tags_server)) == [MODEL]
    assert _tags(tags_server) == _tags(tags_server)  # the cached answer is the same answer
    created = httpx.post(
        url + "/api/create", json={"model": "made:1", "from": MODEL, "system": "x"}, timeout=60
    )
    assert created.status_code == 200, created.text
    assert set(_tags(tags_server)) == {MODEL, "made:1"}
    assert (
        httpx.post(url + "/api/copy", json={"source": "made:1", "destination": "copied:2"}).status_code == 200
    )
    listed = _tags(tags_server)
    assert set(listed) == {MODEL, "made:1", "copied:2"}
    assert listed["copied:2"]["digest"] == listed["made:1"]["digest"]
    assert httpx.request("DELETE", url + "/api/delete", json={"model": "made:1"}).status_code == 200
    assert set(_tags(tags_server)) == {MODEL, "copied:2"}
    # the same name made again with other content: the new digest, not the remembered one
    remade = httpx.post(
        url + "/api/create", json={"model": "copied:2", "from": MODEL, "system": "y"}, timeout=60
    )
    assert remade.status_code == 200, remade.text
    assert _tags(tags_server)["copied:2"]["digest"] != listed["copied:2"]["digest"]
    assert httpx.request("DELETE", url + "/api/delete", json={"model": "copied:2"}).status_code == 200
    assert list(_tags(tags_server)) == [MODEL]


def test_listing_follows_another_process_writing_the_store(tags_server: LiveServer) -> None:
    other = ModelStore(tags_server.settings.models_root, env={})  # as a second process would see it
    before = _tags(tags_server)
    other.copy(MODEL, "outside:1")
    assert set(_tags(tags_server)) == {MODEL, "outside:1"}
    v1 = httpx.get(tags_server.url + "/v1/models", timeout=30).json()["data"]
    assert {m["id"] for m in v1} == {MODEL, "outside:1"}  # /v1/models lists from the same cache
    path = other.layout.manifest_path(other.target_name(other.find("outside:1")))  # type: ignore[arg-type]
    stamp = path.stat().st_mtime - 86_400
    os.utime(path, (stamp, stamp))  # same bytes, another modification time
    assert _tags(tags_server)["outside:1"]["modified_at"] != before[MODEL]["modified_at"]
    assert list(_tags(tags_server)) == [MODEL, "outside:1"]  # newest first: now the older one
    path.unlink()
    assert list(_tags(tags_server)) == [MODEL]
    assert httpx.get(tags_server.url + "/v1/models/outside:1", timeout=30).status_code == 404
    assert httpx.head(tags_server.url + "/api/tags").status_code == 200
