from __future__ import annotations

from pathlib import Path

import pytest

from a3s_power.store.errors import InvalidModelfile
from a3s_power.store.modelfile import ERR_INVALID_COMMAND, parse_modelfile

FULL = '''# a comment
\ufeff
FROM llama3.2
from ./model.gguf
PARAMETER temperature 0.7
PARAMETER stop "<|eot_id|>"
PARAMETER stop <|start_header_id|>
parameter num_ctx 4096
TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}"""
SYSTEM """You are "Mario" from Super Mario Bros."""
system   trailing spaces kept inside{TRAILING}
ADAPTER ./lora.gguf
LICENSE """
MIT License
"""
LICENSE Apache-2.0
MESSAGE user Is Toronto in Canada?
MESSAGE assistant yes
REQUIRES 0.14.0
'''.replace("{TRAILING}", "   ")


def test_parses_every_instruction() -> None:
    mf = parse_modelfile(FULL.replace("\ufeff\n", ""))
    names = [(c.name, c.args) for c in mf.commands]
    assert names[0] == ("model", "llama3.2")
    assert names[1] == ("model", "./model.gguf")
    assert ("temperature", "0.7") in names
    assert ("stop", "<|eot_id|>") in names
    assert ("stop", "<|start_header_id|>") in names
    assert ("num_ctx", "4096") in names
    template = next(c for c in mf.commands if c.name == "template")
    assert template.args.startswith("{{ if .System }}") and template.args.endswith("{{ end }}")
    assert "\n\n{{ .System }}" in template.args
    assert template.line == 8
    systems = [c.args for c in mf.commands if c.name == "system"]
    assert systems == ['You are "Mario" from Super Mario Bros.', "trailing spaces kept inside"]
    assert [c.args for c in mf.commands if c.name == "license"] == ["\nMIT License\n", "Apache-2.0"]
    assert [c.args for c in mf.commands if c.name == "message"] == [
        "user: Is Toronto in Canada?",
        "assistant: yes",
    ]
    assert ("requires", "0.14.0") in names


def test_bom_and_crlf_tolerated() -> None:
    mf = parse_modelfile("\ufeffFROM x\r\nSYSTEM hello\r\n".encode())
    assert [(c.name, c.args) for c in mf.commands] == [("model", "x"), ("system", "hello")]


def test_to_request_types_parameters_and_resolves_paths(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    (tmp_path / "lora.gguf").write_bytes(b"GGUF")
    request = parse_modelfile(FULL.replace("\ufeff\n", "")).to_request(tmp_path)
    assert request.from_ == "llama3.2"
    assert request.files == {"model.gguf": tmp_path / "model.gguf"}
    assert request.adapters == {"lora.gguf": tmp_path / "lora.gguf"}
    assert request.parameters == {
        "temperature": 0.7,
        "stop": ["<|eot_id|>", "<|start_header_id|>"],
        "num_ctx": 4096,
    }
    assert request.messages == [
        {"role": "user", "content": "Is Toronto in Canada?"},
        {"role": "assistant", "content": "yes"},
    ]
    assert request.license == ["\nMIT License\n", "Apache-2.0"]
    assert request.requires == "0.14.0"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("FROM x\nFOO bar\n", 2, ERR_INVALID_COMMAND),
        ("FROM x\n\n\nBAD1 y\n", 4, ERR_INVALID_COMMAND),
        ("FROM x\nMESSAGE bot hello\n", 2, 'message role must be one of "system", "user", or "assistant"'),
        ("FROM x\nPARAMETER temperature hot\n", 2, "invalid float value [hot]"),
        ("FROM x\n# c\nPARAMETER num_ctx 4k\n", 3, "invalid int value [4k]"),
        ("FROM x\nPARAMETER use_mmap maybe\n", 2, "invalid bool value [maybe]"),
        ("FROM x\nPARAMETER nope 1\n", 2, "unknown parameter 'nope'"),
        ("FROM x\nREQUIRES latest\n", 2, "requires must be a valid semver (e.g. 0.14.0)"),
        ('FROM x\nTEMPLATE """unterminated\nmore\n', 2, "unexpected EOF"),
        ('FROM x\nSYSTEM "open\n', 2, "unexpected EOF"),
        ("FROM x\nPARAMETER\n", 3, ERR_INVALID_COMMAND),
        ("FROM x\nPARAMETER temperature\n", 2, "unexpected EOF: temperature"),
        ("FROM x\nMESSAGE user\n", 2, "unexpected EOF: user"),
    ],
)
def test_errors_carry_line_numbers(text: str, line: int, message: str) -> None:
    with pytest.raises(InvalidModelfile) as err:
        parse_modelfile(text).to_request(Path("/nonexistent"))
    assert err.value.line == line
    assert err.value.message.startswith(message)
    assert str(err.value).startswith(f"(line {line}): {message}")


def test_missing_from() -> None:
    with pytest.raises(InvalidModelfile, match="^no FROM line$"):
        parse_modelfile("# only a comment\nSYSTEM hi\n")


def test_round_trip_serialisation() -> None:
    source = (
        "FROM llama3.2\n"
        'TEMPLATE """line one\n"quoted" line two"""\n'
        'SYSTEM " leading space"\n'
        "PARAMETER temperature 0.5\n"
        'MESSAGE user """multi\nline"""\n'
        "LICENSE MIT\n"
    )
    mf = parse_modelfile(source)
    text = str(mf)
    assert text == (
        "FROM llama3.2\n"
        'TEMPLATE """line one\n"quoted" line two"""\n'
        'SYSTEM " leading space"\n'
        "PARAMETER temperature 0.5\n"
        'MESSAGE user "multi\nline"\n'
        "LICENSE MIT\n"
    )
    again = parse_modelfile(text)
    assert [(c.name, c.args) for c in again.commands] == [(c.name, c.args) for c in mf.commands]


def test_deprecated_parameters_warn_and_drop() -> None:
    request = parse_modelfile("FROM x\nPARAMETER mirostat 1\nPARAMETER top_k 5\n").to_request(Path("/"))
    assert request.parameters == {"top_k": 5}
    assert request.warnings == ["parameter 'mirostat' is deprecated"]


def test_speculative_parameters_parse_and_type() -> None:
    """`PARAMETER draft_max N` (an int like Ollama's options) and `PARAMETER draft_model <name>`
    (a store name, A3S Power's own) reach the create request typed; a bad value is a clear error."""
    request = parse_modelfile("FROM x\nPARAMETER draft_max 8\nPARAMETER draft_model smol-draft\n").to_request(
        Path(".")
    )
    assert request.parameters == {"draft_max": 8, "draft_model": "smol-draft"}
    with pytest.raises(InvalidModelfile, match="invalid int value"):
        parse_modelfile("FROM x\nPARAMETER draft_max lots\n").to_request(Path("."))
    from a3s_power.runtime.options import OptionTypeError, options_from_layers
    from a3s_power.store.parameters import coerce_parameter

    assert coerce_parameter("draft_model", "smol-draft") == "smol-draft"
    with pytest.raises(InvalidModelfile, match="draft_model"):
        coerce_parameter("draft_model", 3)
    # the Modelfile layer sets the default, a request option wins; draft_model is no request option
    assert options_from_layers({"draft_max": 8, "draft_model": "x"}, {}).draft_max == 8
    assert options_from_layers({"draft_max": 8}, {"draft_max": 0}).draft_max == 0
    assert options_from_layers({"draft_num_predict": 6}, {}).draft_max == 6  # Ollama's name for it
    with pytest.raises(OptionTypeError, match='option "draft_max" is out of range'):
        options_from_layers({}, {"draft_max": 65})
