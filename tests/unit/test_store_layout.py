from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import msgspec
import orjson
import pytest

from _store_helpers import FIXTURES
from a3s_power.api.ollama.show import list_model
from a3s_power.api.ollama.show import show_builtins as show_model
from a3s_power.store.errors import InvalidModelName, ModelNotFound, StoreError
from a3s_power.store.layout import default_models_root
from a3s_power.store.manifest import Manifest
from a3s_power.store.names import parse_name
from a3s_power.store.store import ModelStore


def test_default_root_precedence(tmp_path: Path) -> None:
    assert (
        default_models_root({"OLLAMA_MODELS": str(tmp_path / "o"), "A3S_POWER_HOME": "/x"}) == tmp_path / "o"
    )
    assert default_models_root({"OLLAMA_MODELS": ' "/q/models" '}) == Path("/q/models")
    assert default_models_root({"A3S_POWER_HOME": str(tmp_path)}) == tmp_path / "models"
    assert default_models_root({"HOME": "/home/u"}) == Path("/home/u/.a3s/power/models")
    assert ModelStore(env={"A3S_POWER_HOME": str(tmp_path)}).root == tmp_path / "models"


@pytest.fixture
def ollama_store(tmp_path: Path) -> ModelStore:
    root = tmp_path / "models"
    shutil.copytree(FIXTURES / "ollama_models", root)
    return ModelStore(root, env={})


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_existing_ollama_store_is_read_unchanged(ollama_store: ModelStore) -> None:
    before = _snapshot(ollama_store.root)
    entries = ollama_store.list_models()
    names = sorted(e.name.display_shortest() for e in entries)
    assert names == [
        "hf.co/bartowski/Tiny-GGUF:Q8_0",
        "someone/Tiny-Chat:Q4_K_M",
        "tiny:1b",
        "tiny:latest",
    ]
    tiny = next(e for e in entries if e.name.display_shortest() == "tiny:latest")
    raw = (ollama_store.root / "manifests/registry.ollama.ai/library/tiny/latest").read_bytes()
    api = msgspec.to_builtins(list_model(tiny))
    assert api["digest"] == hashlib.sha256(raw).hexdigest()
    assert api["size"] == Manifest.from_bytes(raw).total_size()
    assert api["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "128",
        "quantization_level": "F16",
    }
    shown = show_model(ollama_store, "TINY")  # case-insensitive
    assert shown["license"] == "Tiny Test License"
    assert shown["template"].startswith("{{ if .System }}")
    assert shown["parameters"] == 'stop                           "<|user|>"\n' + (
        'stop                           "<|assistant|>"\ntemperature                    0.7'
    )
    assert shown["model_info"]["general.architecture"] == "llama"
    assert "PARAMETER stop <|user|>" in shown["modelfile"]
    assert "# FROM tiny:latest" in shown["modelfile"]
    assert _snapshot(ollama_store.root) == before


def test_case_insensitive_resolution(ollama_store: ModelStore) -> None:
    assert ollama_store.resolve("someone/tiny-chat:q4_k_m").parts == (
        "registry.ollama.ai",
        "someone",
        "Tiny-Chat",
        "Q4_K_M",
    )
    with pytest.raises(ModelNotFound) as err:
        ollama_store.resolve("nothere")
    assert str(err.value) == 'model "nothere" not found, try pulling it first'
    assert err.value.api_message == "model 'nothere' not found"


def test_copy_shares_blobs_and_delete_keeps_shared(ollama_store: ModelStore) -> None:
    blobs_before = set(os.listdir(ollama_store.layout.blobs))
    ollama_store.copy("tiny", "me/copy:v1")
    copied = ollama_store.root / "manifests/registry.ollama.ai/me/copy/v1"
    assert (
        copied.read_bytes()
        == (ollama_store.root / "manifests/registry.ollama.ai/library/tiny/latest").read_bytes()
    )
    assert set(os.listdir(ollama_store.layout.blobs)) == blobs_before
    with pytest.raises(InvalidModelName):
        ollama_store.copy("tiny", "../bad")
    with pytest.raises(ModelNotFound):
        ollama_store.copy("missing", "x")

    assert ollama_store.delete("tiny:latest") == []  # every blob still used by tiny:1b and the copy
    ollama_store.delete("tiny:1b")
    removed = ollama_store.delete("me/copy:v1")
    # the license and params blobs were only used by these three; model+template remain (Tiny-Chat)
    assert len(removed) == 2
    assert not (ollama_store.root / "manifests/registry.ollama.ai/me").exists()  # empty dirs pruned
    for entry in ollama_store.list_models():
        for layer in entry.manifest.all_blobs():
            assert ollama_store.has_blob(layer.digest)
    with pytest.raises(ModelNotFound):
        ollama_store.delete("tiny")


def test_prune_honours_noprune_and_age(ollama_store: ModelStore) -> None:
    blobs = ollama_store.layout.blobs
    orphan = blobs / ("sha256-" + "0" * 64)
    orphan.write_bytes(b"orphan")
    partial = blobs / ("sha256-" + "1" * 64 + "-partial")
    partial.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    os.utime(partial, (old, old))
    fresh = blobs / ("sha256-" + "2" * 64)
    fresh.write_bytes(b"fresh")

    assert ModelStore(ollama_store.root, env={"OLLAMA_NOPRUNE": "1"}).prune() == []
    assert orphan.exists()
    removed = ollama_store.prune()
    assert sorted(removed) == sorted([orphan.name, partial.name])
    assert fresh.exists()  # younger than an hour: may belong to a running pull
    for entry in ollama_store.list_models():
        assert all(ollama_store.has_blob(x.digest) for x in entry.manifest.all_blobs())


def test_write_manifest_refuses_missing_blobs_and_is_atomic(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, env={})
    config = store.add_blob_bytes(b"{}")
    config.media_type = "application/vnd.docker.container.image.v1+json"
    bogus = Manifest.from_bytes(
        orjson.dumps(
            {"config": config.to_json(), "layers": [{"mediaType": "x", "digest": "sha256:" + "a" * 64}]}
        )
    )
    with pytest.raises(StoreError, match="missing blobs"):
        store.write_manifest("broken", bogus)
    assert not store.layout.manifest_path(parse_name("broken")).exists()
    good = Manifest(config=config, layers=[])
    store.write_manifest("ok", good)
    leftovers = [p.name for p in store.layout.manifests.rglob(".*")]
    assert leftovers == []
    assert store.list_models()[0].name.display_shortest() == "ok:latest"


def test_failed_blob_write_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ModelStore(tmp_path, env={})
    store.layout.ensure()

    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("a3s_power.store.blobs.os.replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.add_blob_bytes(b"data that never lands")
    monkeypatch.undo()
    assert list(store.layout.blobs.iterdir()) == []
    assert store.list_models() == []
