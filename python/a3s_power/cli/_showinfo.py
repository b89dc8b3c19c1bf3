"""`show`'s default view (Ollama's cmd.showInfo): titled borderless tables from an /api/show reply.

Sections: Model, Capabilities, Projector, Parameters, Metadata and Tensors (verbose only), System and
License (first two non-empty lines each).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from a3s_power.cli._format import display_width, go_float, go_value, render_table
from a3s_power.store.gguf import format_parameter_count as human_number

Rows = list[list[str]]
_WIDE_SECTIONS = ("Template", "System", "License")


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _model_rows(resp: Mapping[str, Any]) -> Rows:
    details = resp.get("details") or {}
    info = resp.get("model_info")
    rows: Rows = []
    if resp.get("remote_host"):
        rows.append(["", "Remote model", str(resp.get("remote_model", ""))])
        rows.append(["", "Remote URL", str(resp["remote_host"])])
    if info is not None:
        arch = str(info.get("general.architecture", ""))
        rows.append(["", "architecture", arch])
        params = str(details.get("parameter_size") or "")
        count = _number(info.get("general.parameter_count"))
        if not params and count is not None:
            params = human_number(int(count))
        rows.append(["", "parameters", params])
        for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
            value = _number(info.get(f"{arch}.{key}"))
            if value is not None:
                rows.append(["", label, go_float(value, "f")])
    else:
        rows.append(["", "architecture", str(details.get("family", ""))])
        rows.append(["", "parameters", str(details.get("parameter_size", ""))])
    rows.append(["", "quantization", str(details.get("quantization_level", ""))])
    if resp.get("requires"):
        rows.append(["", "requires", str(resp["requires"])])
    return rows


def _projector_rows(info: Mapping[str, Any]) -> Rows:
    arch = str(info.get("general.architecture", ""))
    count = _number(info.get("general.parameter_count")) or 0.0
    embedding = _number(info.get(f"{arch}.vision.embedding_length")) or 0.0
    dims = _number(info.get(f"{arch}.vision.projection_dim")) or 0.0
    return [
        ["", "architecture", arch],
        ["", "parameters", human_number(int(count))],
        ["", "embedding length", go_float(embedding, "f")],
        ["", "dimensions", go_float(dims, "f")],
    ]


def _head(text: str, limit: int) -> Rows:
    """The first `limit` non-empty lines (trimmed), then `...` when there were more."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    rows = [["", line] for line in lines[:limit]]
    if len(lines) > limit:
        rows.append(["", "..."])
    return rows


def _metadata_value(value: object) -> str:
    """Scalars as Go prints them; arrays cut to about 10 columns: `[a b c ...+49149 more]`."""
    if isinstance(value, bool | str | int | float):
        return go_value(value)
    if isinstance(value, list):
        shown, total_width = 0, 1
        for i, item in enumerate(value):
            width = display_width(go_value(item)) + (2 if i > 0 else 0)
            if total_width + width > 10 and i > 0:
                break
            total_width += width
            shown += 1
        if shown < len(value):
            return go_value(value[:shown]).removesuffix("]") + f" ...+{len(value) - shown} more]"
        return go_value(value)
    return "map[string]interface {}" if isinstance(value, dict) else "<nil>"


def render_show(resp: Mapping[str, Any], verbose: bool) -> str:
    """The whole default `show` output."""
    out: list[str] = []

    def section(title: str, rows: Callable[[], Rows]) -> None:
        out.append(f"  {title}\n")
        out.append(render_table(rows(), col_width=100 if title in _WIDE_SECTIONS else 30))
        out.append("\n")

    section("Model", lambda: _model_rows(resp))
    capabilities = resp.get("capabilities") or []
    if capabilities:
        section("Capabilities", lambda: [["", str(c)] for c in capabilities])
    projector = resp.get("projector_info")
    if projector:
        section("Projector", lambda: _projector_rows(projector))
    parameters = str(resp.get("parameters") or "")
    if parameters:
        section("Parameters", lambda: [["", *line.split()] for line in parameters.split("\n") if line])
    if verbose:
        info = resp.get("model_info") or {}
        section("Metadata", lambda: [["", key, _metadata_value(info[key])] for key in sorted(info)])
        tensors = resp.get("tensors") or []
        if tensors:
            section(
                "Tensors",
                lambda: [
                    ["", str(t.get("name", "")), str(t.get("type", "")), go_value(t.get("shape") or [])]
                    for t in tensors
                ],
            )
    if resp.get("system"):
        section("System", lambda: _head(str(resp["system"]), 2))
    if resp.get("license"):
        section("License", lambda: _head(str(resp["license"]), 2))
    return "".join(out)
