"""RPC endpoints (`serve --rpc`, A3S_POWER_RPC) and the tensor_split parameter / option."""

from __future__ import annotations

import pytest

from a3s_power.config import Settings
from a3s_power.runtime.options import OptionTypeError, options_from_layers
from a3s_power.runtime.rpc import device_summary, parse_endpoint, parse_endpoints
from a3s_power.store.errors import InvalidModelfile
from a3s_power.store.parameters import parse_parameter_values


def test_endpoints_parse_and_deduplicate() -> None:
    assert parse_endpoints("10.0.0.2:50052, worker-b.lan:50053,10.0.0.2:50052") == (
        "10.0.0.2:50052",
        "worker-b.lan:50053",
    )
    assert parse_endpoints(["127.0.0.1:1,127.0.0.1:2", "127.0.0.1:3"]) == (
        "127.0.0.1:1",
        "127.0.0.1:2",
        "127.0.0.1:3",
    )
    assert parse_endpoints("") == parse_endpoints(None) == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [("10.0.0.2", "expected host:port"), ("10.0.0.2:0", "port must be 1-65535"),
     ("10.0.0.2:http", "port must be 1-65535"), ("[::1]:50052", "IPv4 only"), ("bad host:1", "bad host")],
)  # fmt: skip
def test_bad_endpoints_are_named(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        parse_endpoint(text)
    assert repr(text) in str(info.value)


def test_settings_read_a3s_power_rpc() -> None:
    assert Settings.from_env({"A3S_POWER_RPC": "127.0.0.1:50052,127.0.0.1:50053"}).rpc_servers == (
        "127.0.0.1:50052",
        "127.0.0.1:50053",
    )
    assert Settings.from_env({}).rpc_servers == ()
    with pytest.raises(ValueError, match="invalid RPC endpoint 'nope'"):
        Settings.from_env({"A3S_POWER_RPC": "nope"})


def test_tensor_split_as_parameter_and_option() -> None:
    assert parse_parameter_values("tensor_split", ["2, 1 ,1"]) == "2,1,1"
    with pytest.raises(InvalidModelfile, match="is not a number"):
        parse_parameter_values("tensor_split", ["1,x"])
    with pytest.raises(InvalidModelfile, match="at least one share must be positive"):
        parse_parameter_values("tensor_split", ["0,0"])
    merged = options_from_layers({"tensor_split": "1,1,1"}, {"tensor_split": [3, 1.5]})
    assert merged.runner.tensor_split == "3,1.5"  # the request wins; it is part of the load spec
    with pytest.raises(OptionTypeError, match="not negative"):
        options_from_layers({"tensor_split": [1, -1]})
    with pytest.raises(OptionTypeError, match="comma-separated string or an array"):
        options_from_layers({"tensor_split": 3})


def test_device_summary_sums_buffer_types_per_device() -> None:
    rows = [
        {"device": "CPU", "description": "x", "buffer_type": "CPU", "model": 10, "context": 1, "compute": 2},
        {"device": "CPU", "description": "x", "buffer_type": "CPU_REPACK", "model": 5, "context": 0,
         "compute": 0},
        {"device": "RPC0", "description": "10.0.0.2:50052", "buffer_type": "RPC0[10.0.0.2:50052]",
         "model": 7, "context": 3, "compute": 1},
    ]  # fmt: skip
    assert device_summary(rows) == [
        {"name": "CPU", "size": 18, "weights": 15, "kv_cache": 1, "compute": 2, "description": "x"},
        {"name": "RPC0", "size": 11, "weights": 7, "kv_cache": 3, "compute": 1, "endpoint": "10.0.0.2:50052"},
    ]
