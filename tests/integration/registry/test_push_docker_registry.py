"""Push to / pull from a real OCI registry: Debian's docker-registry on 127.0.0.1."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from _store_helpers import DockerRegistry, collect, smollm2_path, write_tiny_gguf
from a3s_power.registry import RegistryOptions, pull_model, push_model
from a3s_power.store.create import CreateRequest, create_events
from a3s_power.store.errors import InsecureProtocol, ManifestNotFound, RegistryError
from a3s_power.store.store import ModelStore

pytestmark = pytest.mark.timeout(120)


def _options(**kw: object) -> RegistryOptions:
    base = {"progress_interval": 0.01, "retry_base_delay": 0.01, "push_chunk_size": 1 << 20}
    base.update(kw)
    return RegistryOptions(**base)  # type: ignore[arg-type]


def _snapshot(store: ModelStore) -> dict[str, str]:
    return {
        str(p.relative_to(store.root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.root.rglob("*"))
        if p.is_file()
    }


def _make_model(store: ModelStore, name: str, gguf: Path, system: str = "be brief") -> None:
    blob = store.add_blob_file(gguf)
    request = CreateRequest(
        model=name, files={gguf.name: blob.digest}, system=system, parameters={"top_k": 5}
    )
    assert list(create_events(store, request))[-1] == {"status": "success"}


def test_push_delete_pull_round_trip_real_model(docker_registry: DockerRegistry, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", env={})
    host = f"127.0.0.1:{docker_registry.port}"
    name = f"{host}/library/smol:q4"
    _make_model(store, name, smollm2_path())
    before = _snapshot(store)

    events = collect(push_model(store, name, insecure=True, options=_options()))
    statuses = [e["status"] for e in events]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]
    pushing = [e for e in events if e["status"].startswith("pushing ") and "digest" in e]
    assert {e["status"][len("pushing ") :] for e in pushing} == {e["digest"][7:19] for e in pushing}
    finals = {e["digest"]: e for e in pushing}
    assert all(e["completed"] == e["total"] for e in finals.values())
    assert len(finals) == 4  # model, system, params, config
    # the 98 MB model went up in 1 MiB PATCH chunks: progress advanced in several steps
    model_digest = max(finals.values(), key=lambda e: e["total"])["digest"]
    assert len({e["completed"] for e in pushing if e["digest"] == model_digest}) > 2

    # The registry has it, under the Ollama media types, byte for byte.
    manifest = httpx.get(
        f"{docker_registry.url}/v2/library/smol/manifests/q4",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert manifest.status_code == 200
    stored = store.layout.manifest_path(store.resolve(name)).read_bytes()
    assert manifest.content == stored

    store.delete(name)
    assert store.list_models() == []
    assert list(store.layout.blobs.iterdir()) == []

    events = collect(pull_model(store, name, insecure=True, options=_options()))
    assert [e["status"] for e in events if "digest" not in e] == [
        "pulling manifest",
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert _snapshot(store).keys() == before.keys()
    assert {k: v for k, v in _snapshot(store).items() if "blobs" in k} == {
        k: v for k, v in before.items() if "blobs" in k
    }
    assert store.layout.manifest_path(store.resolve(name)).read_bytes() == stored

    # Pushing again: every blob already exists (HEAD 200), only the manifest is sent.
    again = collect(push_model(store, name, insecure=True, options=_options()))
    # (A slow HEAD may first show `completed: 0`; nothing between 0 and the total is ever sent.)
    blobs = [e for e in again if "digest" in e]
    assert all(e["completed"] in (0, e["total"]) for e in blobs), blobs
    assert {e["digest"]: e["completed"] for e in blobs} == {e["digest"]: e["total"] for e in blobs}


def test_monolithic_push_mount_and_pull_into_second_store(
    docker_registry: DockerRegistry, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "a", env={})
    host = f"127.0.0.1:{docker_registry.port}"
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    _make_model(store, f"{host}/team/tiny:v1", gguf)
    collect(
        push_model(store, f"{host}/team/tiny:v1", insecure=True, options=_options(push_chunk_size=1 << 30))
    )
    # A derived model records `from`; its layers are mounted from team/tiny instead of re-uploaded.
    list(create_events(store, CreateRequest(model=f"{host}/team/derived:v1", from_=f"{host}/team/tiny:v1")))
    collect(push_model(store, f"{host}/team/derived:v1", insecure=True, options=_options()))

    other = ModelStore(tmp_path / "b", env={})
    collect(pull_model(other, f"http://{host}/team/derived:v1", insecure=True, options=_options()))
    _, manifest = other.read_manifest(f"{host}/team/derived:v1")
    for layer in manifest.all_blobs():
        assert other.read_blob(layer.digest) == store.read_blob(layer.digest)


def test_pull_errors_from_real_registry(docker_registry: DockerRegistry, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "m", env={})
    host = f"127.0.0.1:{docker_registry.port}"
    with pytest.raises(ManifestNotFound, match="pull model manifest: file does not exist"):
        collect(pull_model(store, f"{host}/library/absent:latest", insecure=True, options=_options()))
    with pytest.raises(InsecureProtocol, match="insecure protocol http"):
        collect(pull_model(store, f"http://{host}/library/absent:latest", options=_options()))
    assert store.list_models() == []


def _htpasswd(path: Path, user: str, password: str) -> Path | None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        return None
    path.write_text(f"{user}:{hashed}\n")
    return path


def test_push_and_pull_with_basic_auth(tmp_path: Path) -> None:
    htpasswd = _htpasswd(tmp_path / "htpasswd", "alice", "s3cret")
    if htpasswd is None:
        pytest.skip("no bcrypt support in crypt(3) to write an htpasswd file")
    try:
        registry = DockerRegistry(tmp_path / "registry", htpasswd=htpasswd)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        store = ModelStore(tmp_path / "models", env={})
        name = f"127.0.0.1:{registry.port}/private/tiny:v1"
        _make_model(store, name, write_tiny_gguf(tmp_path / "tiny.gguf"))
        with pytest.raises(RegistryError) as err:
            collect(push_model(store, name, insecure=True, options=_options()))
        assert err.value.http_status == 401
        good = _options(username="alice", password="s3cret")
        assert collect(push_model(store, name, insecure=True, options=good))[-1] == {"status": "success"}
        other = ModelStore(tmp_path / "other", env={})
        assert collect(pull_model(other, name, insecure=True, options=good))[-1] == {"status": "success"}
        assert other.read_manifest_bytes(name)[1] == store.read_manifest_bytes(name)[1]
    finally:
        registry.stop()
