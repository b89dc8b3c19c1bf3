"""Property tests on every parser that reads untrusted input: each either returns a value or raises
its own clear error type, never anything else (an IndexError or a RecursionError would be a 500)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a3s_power.api.limits import MAX_JSON_DEPTH, body_problem, json_depth
from a3s_power.api.streaming import ndjson_line, sse_event
from a3s_power.chat.gotemplate import GoTemplateError, parse_go_template
from a3s_power.durations import keep_alive_seconds
from a3s_power.errors import InvalidRequest
from a3s_power.runtime.grammar import check_schema
from a3s_power.runtime.options import OptionTypeError, options_from_layers
from a3s_power.store.errors import InvalidDigest, InvalidGGUF, InvalidModelfile, InvalidModelName
from a3s_power.store.gguf import read_gguf
from a3s_power.store.modelfile import parse_modelfile
from a3s_power.store.names import blob_filename, normalize_digest, parse_name

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
name_text = st.text(alphabet=st.sampled_from("abc:/._-@ \n\t1A%\\"), max_size=40) | st.text(max_size=40)


@FAST
@given(name_text)
def test_model_names(text: str) -> None:
    try:
        name = parse_name(text)
    except InvalidModelName:
        return
    assert text == text.strip()  # never trimmed into another name
    again = parse_name(name.display_long())
    assert again.key == name.key
    for part in name.parts:
        assert ".." not in part.split("/") and "\\" not in part and "\n" not in part


@FAST
@given(st.text(max_size=80) | st.from_regex(r"sha256[:-][0-9a-fA-F]{60,68}", fullmatch=True))
def test_digests(text: str) -> None:
    try:
        digest = normalize_digest(text)
    except InvalidDigest:
        return
    assert digest.startswith("sha256:") and len(digest) == 71
    filename = blob_filename(digest)
    assert "/" not in filename and ".." not in filename and filename == "sha256-" + digest[7:]


@FAST
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_modelfiles(text: str | bytes) -> None:
    with contextlib.suppress(InvalidModelfile):
        parse_modelfile(text)


@FAST
@given(
    st.text(alphabet=st.sampled_from(list("{}.$ -_()|abcifendrangewithlsteqnot\"'`01\n")), max_size=80)
    | st.text(max_size=80)
)
def test_go_templates(text: str) -> None:
    with contextlib.suppress(GoTemplateError):
        parse_go_template(text)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400))
def test_gguf_headers(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path: Path = tmp_path_factory.mktemp("gguf") / "x.gguf"
    for blob in (data, b"GGUF" + data, b"GGUF\x03\x00\x00\x00" + data):
        path.write_bytes(blob)
        with contextlib.suppress(InvalidGGUF):
            read_gguf(path)


@FAST
@given(st.dictionaries(st.sampled_from(["temperature", "top_k", "num_predict", "seed", "stop", "num_ctx",
                                        "repeat_penalty", "mirostat", "use_mmap", "unknown"]),
                       json_values, max_size=5))  # fmt: skip
def test_options_merge(options: dict[str, object]) -> None:
    try:
        merged = options_from_layers({"temperature": 0.5}, options)
    except OptionTypeError:
        return
    assert merged.runner.num_ctx >= 16
    assert all(isinstance(s, str) for s in merged.stop)


@FAST
@given(json_values)
def test_keep_alive(value: object) -> None:
    try:
        seconds = keep_alive_seconds(value)
    except InvalidRequest:
        return
    assert seconds >= 0


@FAST
@given(json_values)
def test_json_schema_checks(schema: object) -> None:
    with contextlib.suppress(InvalidRequest):
        check_schema(schema)


@FAST
@given(st.binary(max_size=300))
def test_body_checks(body: bytes) -> None:
    body_problem(body)  # never raises
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return

    def depth(v: object) -> int:
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        return 0

    assert json_depth(body) == depth(doc)


def test_depth_limit_counts_only_structure() -> None:
    assert body_problem(b'{"a": "' + b"[" * 500 + b'"}') is None  # brackets inside a string
    assert body_problem(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)) is not None


@FAST
@given(json_values)
def test_ndjson_and_sse_framing(value: object) -> None:
    if isinstance(value, float) and value != value:
        return
    line = ndjson_line(value)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    event = sse_event(value)
    assert event.startswith(b"data: ") and event.endswith(b"\n\n") and b"\n" not in event[6:-2]
    assert json.loads(line) == json.loads(event[6:])
