"""Ollama model names: `[scheme://][host/][namespace/]model[:tag]` (types/model/name.go).

Every part is checked against Ollama's character rules, which also guarantees that no part can be
`.`/`..` or contain a path separator, so a valid name always maps inside the manifests directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from a3s_power.store.errors import InvalidDigest, InvalidModelName

DEFAULT_SCHEME = "https"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_MAX_PART = 80
_MAX_HOST = 350
_DIGEST_RE = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")


def _alnum_or_underscore(ch: str) -> bool:
    return ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9")


def _is_valid_part(kind: str, part: str) -> bool:
    if not part or len(part) > (_MAX_HOST if kind == "host" else _MAX_PART):
        return False
    if not _alnum_or_underscore(part[0]):
        return False
    for ch in part[1:]:
        if ch in "_-":
            continue
        if ch == ".":
            if kind == "namespace":
                return False
            continue
        if ch == ":":
            if kind != "host":
                return False
            continue
        if not _alnum_or_underscore(ch):
            return False
    return True


@dataclass(frozen=True, slots=True)
class ModelName:
    """A fully qualified model name. Compare with `key` for Ollama's case-insensitive equality."""

    host: str
    namespace: str
    model: str
    tag: str
    scheme: str = DEFAULT_SCHEME

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.host.casefold(), self.namespace.casefold(), self.model.casefold(), self.tag.casefold())

    def same_model(self, other: ModelName) -> bool:
        return self.key == other.key

    @property
    def repository(self) -> str:
        """The registry repository path: `namespace/model`."""
        return f"{self.namespace}/{self.model}"

    @property
    def parts(self) -> tuple[str, str, str, str]:
        """Path components below `manifests/`."""
        return (self.host, self.namespace, self.model, self.tag)

    def display_shortest(self) -> str:
        if self.host.casefold() != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace.casefold() != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        else:
            prefix = ""
        return f"{prefix}{self.model}:{self.tag}"

    def display_long(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def __str__(self) -> str:
        return self.display_long()

    def with_tag(self, tag: str) -> ModelName:
        return ModelName(self.host, self.namespace, self.model, tag, self.scheme)


def parse_name_bare(text: str) -> tuple[str, str, str, str, str]:
    """Split like Ollama's ParseNameBare: (scheme, host, namespace, model, tag), empty where absent."""
    scheme = host = namespace = tag = ""
    rest = text
    if rest.rfind(":") > rest.rfind("/"):
        rest, _, tag = rest.rpartition(":")
    rest, slash, model = rest.rpartition("/")
    if not slash:
        return scheme, host, namespace, model, tag
    before, slash, namespace = rest.rpartition("/")
    if not slash:
        return scheme, host, rest, model, tag
    rest = before
    scheme_part, sep, host_part = rest.partition("://")
    if sep:
        scheme, host = scheme_part, host_part
    else:
        host = rest
    return scheme, host, namespace, model, tag


def parse_name(text: str) -> ModelName:
    """Parse and validate, filling Ollama's defaults. Raises InvalidModelName (`invalid model name`)."""
    # no trimming: "name:tag\n" is not `name:tag` (a DELETE with it must not delete the real model)
    if not isinstance(text, str) or not text.strip() or text != text.strip():
        raise InvalidModelName(str(text))
    scheme, host, namespace, model, tag = parse_name_bare(text)
    name = ModelName(
        host=host or DEFAULT_HOST,
        namespace=namespace or DEFAULT_NAMESPACE,
        model=model,
        tag=tag or DEFAULT_TAG,
        scheme=scheme or DEFAULT_SCHEME,
    )
    if scheme and scheme not in ("http", "https"):
        raise InvalidModelName(text)
    checks = (("host", name.host), ("namespace", name.namespace), ("model", name.model), ("tag", name.tag))
    if not all(_is_valid_part(kind, part) for kind, part in checks):
        raise InvalidModelName(text)
    return name


def is_valid_name(text: str) -> bool:
    try:
        parse_name(text)
    except InvalidModelName:
        return False
    return True


def normalize_digest(digest: str) -> str:
    """`sha256:<hex>` or `sha256-<hex>` → `sha256:<lowercase hex>`; anything else → InvalidDigest."""
    match = _DIGEST_RE.match(digest or "")
    if match is None:
        raise InvalidDigest(digest)
    return "sha256:" + match.group(1).lower()


def digest_hex(digest: str) -> str:
    return normalize_digest(digest)[len("sha256:") :]


def blob_filename(digest: str) -> str:
    """`sha256:<hex>` → `sha256-<hex>`, the file name under blobs/."""
    return "sha256-" + digest_hex(digest)


def short_digest(digest: str) -> str:
    """The 12-hex form Ollama prints in `pulling <digest12>`."""
    return digest_hex(digest)[:12]
