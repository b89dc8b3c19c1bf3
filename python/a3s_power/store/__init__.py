"""Ollama-compatible model store: names, on-disk layout, GGUF metadata, Modelfile, create/show/list."""

from __future__ import annotations

from a3s_power.store.errors import (
    BlobNotFound,
    CreateError,
    DigestMismatch,
    InvalidDigest,
    InvalidGGUF,
    InvalidModelfile,
    InvalidModelName,
    ModelNotFound,
    RegistryError,
    StoreError,
)
from a3s_power.store.layout import StoreLayout, default_models_root
from a3s_power.store.manifest import Layer, Manifest
from a3s_power.store.names import ModelName, parse_name
from a3s_power.store.store import ModelEntry, ModelStore

__all__ = [
    "BlobNotFound",
    "CreateError",
    "DigestMismatch",
    "InvalidDigest",
    "InvalidGGUF",
    "InvalidModelName",
    "InvalidModelfile",
    "Layer",
    "Manifest",
    "ModelEntry",
    "ModelName",
    "ModelNotFound",
    "ModelStore",
    "RegistryError",
    "StoreError",
    "StoreLayout",
    "default_models_root",
    "parse_name",
]
