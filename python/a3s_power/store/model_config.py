"""The config blob (Ollama's ConfigV2) and the `details` object derived from it."""

from __future__ import annotations

from typing import Any

import orjson

from a3s_power.store.gguf import GGUFInfo, format_parameter_count


def config_from_gguf(info: GGUFInfo, *, is_projector_present: bool = False) -> dict[str, Any]:
    family = info.architecture
    families = [family] if family else []
    if is_projector_present and "clip" not in families:
        families.append("clip")
    config: dict[str, Any] = {
        "model_format": "gguf",
        "model_family": family,
        "model_families": families,
        "model_type": format_parameter_count(info.parameter_count),
        "file_type": info.file_type,
    }
    if info.context_length:
        config["context_length"] = info.context_length
    if info.embedding_length:
        config["embedding_length"] = info.embedding_length
    config["architecture"] = "amd64"
    config["os"] = "linux"
    return config


def config_bytes(config: dict[str, Any]) -> bytes:
    return orjson.dumps(config)


def details_from_config(config: dict[str, Any], parent_model: str = "") -> dict[str, Any]:
    """Ollama's ModelDetails: parent_model, format, family, families, parameter_size, quantization_level."""
    families = config.get("model_families")
    family = str(config.get("model_family", "") or "")
    details: dict[str, Any] = {
        "parent_model": parent_model,
        "format": str(config.get("model_format", "") or "gguf"),
        "family": family,
        "families": list(families) if isinstance(families, list) else ([family] if family else None),
        "parameter_size": str(config.get("model_type", "") or ""),
        "quantization_level": str(config.get("file_type", "") or ""),
    }
    for key in ("context_length", "embedding_length"):
        if isinstance(config.get(key), int) and config[key] > 0:
            details[key] = config[key]
    return details
