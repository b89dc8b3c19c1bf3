"""The one options type: defaults in one place, every field carried to the engine request by
field metadata (no second hand-written list), the runner part split off, ranges checked."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from a3s_power import _native
from a3s_power.runtime.generation import GenerationOptions, RunnerOptions
from a3s_power.runtime.options import OptionTypeError, options_from_layers


def _perturbed(value: Any, kind: str = "") -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return value + 0.25
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, dict):
        return {7: 1.5}
    if isinstance(value, list):
        return ["t"] if kind == "list[str]" else [0.5]
    return value


def _native_values(request: _native.GenerateRequest) -> dict[str, Any]:
    out = {}
    for owner, prefix in ((request, ""), (request.sampling, "sampling.")):
        for name in dir(type(owner)):
            if not name.startswith("_") and name not in ("sampling", "prompt", "media"):
                out[prefix + name] = getattr(owner, name)
    return out


def test_every_engine_parameter_is_driven_by_an_option() -> None:
    """Change every option: every field of the native request (and its sampler) changes, so no
    engine parameter is left to a default the options type does not know about."""
    base = GenerationOptions()
    changed = GenerationOptions(
        **{f.name: _perturbed(getattr(base, f.name), str(f.type)) for f in fields(base) if f.name != "runner"}
    )
    before, after = _native_values(base.to_request([1])), _native_values(changed.to_request([1]))
    assert before.keys() == after.keys()
    unchanged = sorted(k for k in before if before[k] == after[k])
    assert unchanged == []


def test_layers_and_runner_part() -> None:
    options = options_from_layers(
        {"temperature": 0.1, "num_ctx": 1024, "stop": ["a"]},
        {"temperature": 0.7, "top_k": 3, "num_batch": 64},
        default_num_ctx=4096,
        trained_ctx=8192,
    )
    assert (options.temperature, options.top_k, options.stop) == (0.7, 3, ["a"])
    assert options.runner == RunnerOptions(num_ctx=1024, num_batch=64)
    request = options.to_request([1, 2])
    assert (request.sampling.temperature, request.sampling.top_k) == (pytest.approx(0.7), 3)
    assert GenerationOptions().runner == RunnerOptions()  # the defaults live in the types


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"num_predict": 2**63}, 'option "num_predict" is out of range'),
        ({"top_k": 2**31}, 'option "top_k" is out of range'),
        ({"seed": 2**64}, 'option "seed" is out of range'),
        ({"num_ctx": -(2**31) - 1}, 'option "num_ctx" is out of range'),
        ({"repeat_penalty": 1e308}, 'option "repeat_penalty" is out of range'),
        ({"temperature": 10**400}, 'option "temperature" is out of range'),
        ({"num_predict": "5"}, 'option "num_predict" must be of type integer'),
        ({"num_predict": True}, 'option "num_predict" must be of type integer'),
        # found by test_parsers_hypothesis: a non-finite float for an integer was a ValueError (500)
        ({"top_k": float("nan")}, 'option "top_k" must be of type integer, got nan'),
        ({"seed": float("inf")}, 'option "seed" must be of type integer, got inf'),
        ({"num_ctx": float("-inf")}, 'option "num_ctx" must be of type integer, got -inf'),
    ],
)
def test_ranges_and_types_are_400s(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(OptionTypeError) as err:
        options_from_layers(options)
    assert err.value.status == 400 and needle in str(err.value)


def test_num_predict_beyond_the_engine_means_no_limit() -> None:
    assert options_from_layers({"num_predict": 2**40}).num_predict == 2**31 - 1
    assert options_from_layers({"seed": 2**62}).seed == 2**62
