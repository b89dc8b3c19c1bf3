"""The client commands' text formats: Ollama's format package, Go's float printing, tablewriter's layout,
the progress bar, and the server address taken from OLLAMA_HOST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from a3s_power.cli._client import base_url
from a3s_power.cli._format import (
    go_float,
    go_value,
    human_bytes,
    human_duration,
    human_time,
    parse_time,
    render_table,
)
from a3s_power.cli._progress import Bar, Spinner
from a3s_power.cli._showinfo import render_show
from a3s_power.cli.ps import processor, until
from a3s_power.store.gguf import format_parameter_count as human_number

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1 KB"), (1500, "1.5 KB"), (98_362_651, "98 MB"),
     (4_683_073_184, "4.7 GB"), (4_000_000_000, "4 GB"), (123_456_789_012, "123 GB"), (2 * 10**12, "2 TB")],
)  # fmt: skip
def test_human_bytes_is_decimal_like_ollamas(size: int, text: str) -> None:
    assert human_bytes(size) == text


def test_human_number() -> None:
    assert [human_number(n) for n in (134_515_008, 8_030_261_248, 7 * 10**9, 3_000_000, 12_345, 999)] == [
        "134.52M", "8.0B", "7B", "3M", "12K", "999",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
     (299, "4 minutes"), (3600, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"),
     (3 * 86400, "3 days"), (15 * 86400, "2 weeks"), (70 * 86400, "2 months"), (800 * 86400, "2 years")],
)  # fmt: skip
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_time_past_future_forever_and_unknown() -> None:
    assert human_time(NOW - timedelta(days=15), "Never", NOW) == "2 weeks ago"
    assert human_time(NOW + timedelta(minutes=4, seconds=59), "Never", NOW) == "4 minutes from now"
    assert human_time(NOW + timedelta(days=365 * 300), "Never", NOW) == "Forever"
    assert human_time(None, "Never", NOW) == "Never"
    assert parse_time("0001-01-01T00:00:00Z") is None  # Go's zero time
    assert parse_time("2025-06-01T12:00:00.123456789Z") == NOW + timedelta(microseconds=123456)


def test_ps_processor_and_until() -> None:
    assert [processor(100, 0), processor(100, 100), processor(100, 52), processor(100, 200)] == [
        "100% CPU", "100% GPU", "48%/52% CPU/GPU", "Unknown",
    ]  # fmt: skip
    assert until("2025-06-01T11:59:00Z", NOW) == "Stopping..."
    assert until("2025-06-01T12:04:30Z", NOW) == "4 minutes from now"


def test_go_float_matches_fmt() -> None:
    cases = {8192: "8192", 134515008: "1.34515008e+08", 1e-05: "1e-05", 100000.0: "100000", 1e6: "1e+06",
             0.5: "0.5", 0.0001: "0.0001", -2.5: "-2.5", 0.0: "0"}  # fmt: skip
    assert {k: go_float(float(k)) for k in cases} == cases
    assert go_float(134515008.0, "f") == "134515008" and go_float(1e-05, "f") == "0.00001"
    assert go_value([1, "a", True, None, 2.5]) == "[1 a true <nil> 2.5]"


def test_table_pads_every_cell_with_four_spaces() -> None:
    out = render_table(
        [["smollm2:135m", "8b0950667647", "98 MB", "2 weeks ago"]], ["NAME", "ID", "SIZE", "MODIFIED"]
    )
    assert out == (
        "NAME            ID              SIZE     MODIFIED    \n"  # the header's last cell: one space
        "smollm2:135m    8b0950667647    98 MB    2 weeks ago    \n"
    )


def test_table_wraps_long_cells_on_words() -> None:
    text = "one two three four five six seven eight nine ten"
    out = render_table([["", "key", text]])
    assert out.splitlines() == [
        "    key    one two three four five six    ",
        "  " + "    " + "   " + "    " + "seven eight nine ten".ljust(27) + "    ",
    ]  # a shorter cell continues with "  ", as tablewriter pads it


def test_show_sections() -> None:
    reply = {
        "details": {"parameter_size": "8.0B", "quantization_level": "Q4_K_M"},
        "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
        "capabilities": ["completion", "tools"],
        "parameters": 'stop                           "<|eot_id|>"\ntemperature                    0.6',
        "system": "one\n\ntwo\nthree",
        "license": "MIT",
    }
    assert render_show(reply, verbose=False) == (
        "  Model\n"
        "    architecture      llama     \n"
        "    parameters        8.0B      \n"
        "    context length    131072    \n"
        "    quantization      Q4_K_M    \n"
        "\n"
        "  Capabilities\n"
        "    completion    \n"
        "    tools         \n"
        "\n"
        "  Parameters\n"
        '    stop           "<|eot_id|>"    \n'
        "    temperature    0.6             \n"
        "\n"
        "  System\n"
        "    one    \n"
        "    two    \n"
        "    ...    \n"
        "\n"
        "  License\n"
        "    MIT    \n"
        "\n"
    )


def test_bar_and_spinner_lines() -> None:
    bar = Bar("pulling 6a0746a1ec1a:", total=4_683_073_184, completed=0, started=0.0)
    bar.set(4_683_073_184)
    line = bar.render(80, now=10.0)
    assert line.startswith("pulling 6a0746a1ec1a: 100% ▕███") and line.endswith("▏ 4.7 GB" + " " * 25)
    assert len(line) == 79
    running = Bar("pulling 6a0746a1ec1a:", total=1000, completed=0, started=0.0)
    running.set(500)
    assert running.render(80, now=5.0).endswith("▏  500 B/1 KB     100 B/s      5s")
    assert Spinner("success", started=0.0).render(0.25) == "success ⠹ "
    stopped = Spinner("success", stopped=True)
    assert stopped.render(1.0) == "success "


@pytest.mark.parametrize(
    ("value", "url"),
    [("", "http://127.0.0.1:11434"), ("0.0.0.0", "http://0.0.0.0:11434"), (":8080", "http://127.0.0.1:8080"),
     ("[::1]:9000", "http://[::1]:9000"), ("https://example.com", "https://example.com:443"),
     ("http://example.com:8000/ollama/", "http://example.com:8000/ollama"), ('"host:1234"', "http://host:1234")],
)  # fmt: skip
def test_base_url_follows_ollama_host(value: str, url: str) -> None:
    assert base_url({"OLLAMA_HOST": value}) == url
