from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from _store_helpers import collect, smollm2_path, write_tiny_gguf, write_tiny_llama_gguf
from a3s_power.api.ollama.show import show_builtins as show_model
from a3s_power.store.create import CreateRequest, create_events, create_model, stage_modelfile_request
from a3s_power.store.errors import BlobNotFound, CreateError, ModelNotFound
from a3s_power.store.gguf import read_gguf
from a3s_power.store.manifest import CONFIG_V1, MANIFEST_V2, MEDIA_LICENSE, MEDIA_MODEL, MEDIA_PARAMS
from a3s_power.store.modelfile import parse_modelfile
from a3s_power.store.store import ModelStore


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", env={})


def test_modelfile_create_show_round_trip_with_real_gguf(store: ModelStore) -> None:
    source = smollm2_path()
    text = (
        f"FROM {source}\n"
        "PARAMETER temperature 0.6\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER num_ctx 2048\n"
        'SYSTEM """You are "Smol".\nBe brief."""\n'
        "LICENSE apache-2.0\n"
        "MESSAGE user hi\n"
        "MESSAGE assistant hello\n"
    )
    request = stage_modelfile_request(store, "smol:test", parse_modelfile(text).to_request(source.parent))
    events = list(create_events(store, request))
    assert events[0] == {"status": "parsing GGUF"}
    assert events[-2:] == [{"status": "writing manifest"}, {"status": "success"}]
    statuses = [e["status"] for e in events[1:-2]]
    assert all(s.startswith(("using existing layer sha256:", "creating new layer sha256:")) for s in statuses)

    manifest_path = store.root / "manifests/registry.ollama.ai/library/smol/test"
    manifest = orjson.loads(manifest_path.read_bytes())
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST_V2
    assert manifest["config"]["mediaType"] == CONFIG_V1
    media = [layer["mediaType"] for layer in manifest["layers"]]
    assert media[0] == MEDIA_MODEL
    model_blob = store.root / "blobs" / manifest["layers"][0]["digest"].replace(":", "-")
    assert model_blob.read_bytes() == source.read_bytes()

    shown = show_model(store, "smol:test", verbose=True)
    assert shown["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "134.52M",
        "quantization_level": "Q4_1",
        "context_length": 8192,
        "embedding_length": 576,
    }
    assert shown["system"] == 'You are "Smol".\nBe brief.'
    assert shown["license"] == "apache-2.0"
    assert shown["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert shown["parameters"].splitlines() == [
        "num_ctx                        2048",
        'stop                           "<|im_end|>"',
        "temperature                    0.6",
    ]
    assert shown["model_info"]["llama.context_length"] == 8192
    assert len(shown["model_info"]["tokenizer.ggml.tokens"]) == 49152  # verbose keeps arrays
    assert shown["tensors"][0] == {"name": "token_embd.weight", "type": "Q8_0", "shape": [576, 49152]}
    assert shown["capabilities"] == ["completion"]
    assert "<|im_start|>" in shown["template"]  # GGUF chat template when no TEMPLATE layer

    # The generated Modelfile parses back into the same model.
    regenerated = parse_modelfile(shown["modelfile"]).to_request(Path("/"))
    assert regenerated.files == {model_blob.name: model_blob}
    assert regenerated.system == 'You are "Smol".\nBe brief.'
    assert regenerated.parameters == {"num_ctx": 2048, "stop": ["<|im_end|>"], "temperature": 0.6}
    again = stage_modelfile_request(store, "smol:again", regenerated)
    list(create_events(store, again))
    assert show_model(store, "smol:again")["parameters"] == shown["parameters"]


def test_structured_request_from_existing_model_merges_and_replaces(
    store: ModelStore, tmp_path: Path
) -> None:
    gguf = write_tiny_gguf(tmp_path / "t.gguf")
    blob = store.add_blob_file(gguf)
    base = CreateRequest.from_json(
        {
            "model": "base",
            "files": {"t.gguf": blob.digest},
            "parameters": {"temperature": 0.5, "stop": ["A"]},
            "license": ["L1", "L2"],
            "system": "sys1",
        }
    )
    assert [e["status"] for e in create_events(store, base)][-1] == "success"
    derived = CreateRequest.from_json(
        {
            "model": "derived:v2",
            "from": "BASE",
            "parameters": {"top_k": "7", "temperature": 1},
            "license": "only",
            "messages": [{"role": "User", "content": "q"}],
            "template": "{{ .Prompt }}",
        }
    )
    events = collect(create_model(store, derived))
    assert events[-1] == {"status": "success"}
    assert (
        sum("creating new layer" in e["status"] for e in events) == 4
    )  # params, license, messages, template
    shown = show_model(store, "derived:v2")
    assert shown["system"] == "sys1"
    assert shown["license"] == "only"
    assert shown["template"] == "{{ .Prompt }}"
    assert shown["messages"] == [{"role": "user", "content": "q"}]
    assert shown["details"]["parent_model"] == "base:latest"
    params = orjson.loads(
        store.read_blob(store.read_manifest("derived:v2")[1].layers_of(MEDIA_PARAMS)[0].digest)
    )
    assert params == {"temperature": 1.0, "stop": ["A"], "top_k": 7}
    _, manifest = store.read_manifest("derived:v2")
    assert len(manifest.layers_of(MEDIA_LICENSE)) == 1
    # Deleting the base keeps every blob the derived model still uses.
    store.delete("base")
    assert all(store.has_blob(layer.digest) for layer in manifest.all_blobs())


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        ({"model": "x"}, CreateError, "neither 'from' or 'files' was specified"),
        ({"model": "x", "from": "missing"}, ModelNotFound, 'model "missing" not found'),
        ({"model": "x", "files": {"m.gguf": "sha256:" + "0" * 64}}, BlobNotFound, 'blob "sha256:0000'),
        (
            {"model": "x", "files": {"../m.gguf": "sha256:" + "0" * 64}},
            CreateError,
            "file path must be relative",
        ),
        (
            {"model": "x", "from": "base", "parameters": {"bogus": 1}},
            CreateError,
            "unknown parameter 'bogus'",
        ),
        ({"model": "x", "from": "base", "messages": [{"role": "tool", "content": "c"}]}, CreateError, "role"),
        ({"model": "x", "from": "base", "quantize": "q4_K_M"}, CreateError, "only supported for F16"),
    ],
)
def test_create_errors(store: ModelStore, tmp_path: Path, body: dict, error: type, message: str) -> None:
    blob = store.add_blob_file(write_tiny_gguf(tmp_path / "t.gguf"))
    list(create_events(store, CreateRequest(model="base", files={"t.gguf": blob.digest})))
    with pytest.raises(error) as err:
        list(create_events(store, CreateRequest.from_json(body)))
    assert message in str(err.value)
    assert [e.name.model for e in store.list_models()] == ["base"]


def test_quantize_on_create(store: ModelStore, tmp_path: Path) -> None:
    native = pytest.importorskip("a3s_power._native", reason="native module not built")
    if not hasattr(native, "quantize"):
        pytest.skip("a3s_power._native has no quantize()")
    gguf = write_tiny_llama_gguf(tmp_path / "f32.gguf")
    blob = store.add_blob_file(gguf)
    request = CreateRequest(model="q", files={"f32.gguf": blob.digest}, quantize="q8_0")
    events = list(create_events(store, request))
    quant = [e for e in events if e["status"].startswith("quantizing")]
    assert quant and quant[0]["status"] == "quantizing F32 model to Q8_0"
    assert quant[0]["digest"] == "0000000000000000000"
    _, manifest = store.read_manifest("q")
    model = manifest.layers_of(MEDIA_MODEL)[0]
    assert model.digest != blob.digest
    info = read_gguf(store.blob_path(model.digest))
    assert info.file_type == "Q8_0"
    assert show_model(store, "q")["details"]["quantization_level"] == "Q8_0"
    assert store.blob_path(model.digest).stat().st_size < store.blob_path(blob.digest).stat().st_size
    assert [p.name for p in store.layout.blobs.iterdir() if p.name.startswith(".")] == []


def test_quantize_rejects_already_quantized(store: ModelStore) -> None:
    blob = store.add_blob_file(smollm2_path())
    request = CreateRequest(model="q", files={"m.gguf": blob.digest}, quantize="q8_0")
    with pytest.raises(CreateError, match="only supported for F16, BF16 and F32"):
        list(create_events(store, request))
    with pytest.raises(CreateError, match="unsupported quantization type q9_z"):
        list(create_events(store, CreateRequest(model="q", files={"m.gguf": blob.digest}, quantize="q9_z")))
