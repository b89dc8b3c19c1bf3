"""Docker v2 image manifests with Ollama's media types (manifest/manifest.go, types/model/config.go)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from a3s_power.store.errors import StoreError
from a3s_power.store.names import normalize_digest

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_DRAFT = "application/vnd.ollama.image.draft"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_PROMPT = "application/vnd.ollama.image.prompt"  # legacy name of the template layer
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_LICENSE = "application/vnd.ollama.image.license"
MEDIA_EMBED = "application/vnd.ollama.image.embed"


@dataclass(slots=True)
class Layer:
    media_type: str
    digest: str
    size: int
    from_: str = ""
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.from_:
            out["from"] = self.from_
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, data: Any) -> Layer:
        if not isinstance(data, dict):
            raise StoreError("invalid manifest: layer is not an object")
        try:
            return cls(
                media_type=str(data.get("mediaType", "")),
                digest=normalize_digest(str(data["digest"])),
                size=int(data.get("size", 0)),
                from_=str(data.get("from", "") or ""),
                name=str(data.get("name", "") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"invalid manifest layer: {exc}") from exc


@dataclass(slots=True)
class Manifest:
    config: Layer
    layers: list[Layer] = field(default_factory=list)
    schema_version: int = 2
    media_type: str = MANIFEST_V2

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"invalid manifest: {exc}") from exc
        if not isinstance(data, dict) or "config" not in data:
            raise StoreError("invalid manifest: missing config")
        return cls(
            config=Layer.from_json(data["config"]),
            layers=[Layer.from_json(item) for item in data.get("layers") or []],
            schema_version=int(data.get("schemaVersion", 2)),
            media_type=str(data.get("mediaType", MANIFEST_V2)),
        )

    def all_blobs(self) -> list[Layer]:
        """Layers, then config, deduplicated by digest (the order Ollama pulls and pushes in)."""
        seen: set[str] = set()
        out: list[Layer] = []
        for layer in [*self.layers, self.config]:
            if layer.digest and layer.digest not in seen:
                seen.add(layer.digest)
                out.append(layer)
        return out

    def total_size(self) -> int:
        return sum(layer.size for layer in self.layers) + self.config.size

    def layers_of(self, *media_types: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type in media_types]
