"""`/api/tags` and `/api/show` bodies, built from the store's model views."""

from __future__ import annotations

import msgspec

from a3s_power.api.ollama.manage_protocol import ListModel, ShowResponse, ShowTensor, model_details
from a3s_power.store.errors import InvalidGGUF
from a3s_power.store.gguf import read_gguf
from a3s_power.store.manifest import MEDIA_MODEL
from a3s_power.store.model_config import details_from_config
from a3s_power.store.names import ModelName
from a3s_power.store.show import DEFAULT_TEMPLATE, ModelView, capabilities
from a3s_power.store.store import ModelEntry, ModelStore, format_time


def list_model(entry: ModelEntry) -> ListModel:
    """One row of `/api/tags`."""
    short = entry.name.display_shortest()
    parent = next((x.from_ for x in entry.manifest.layers if x.media_type == MEDIA_MODEL), "")
    return ListModel(
        name=short,
        model=short,
        modified_at=format_time(entry.modified_at),
        size=entry.size,
        digest=entry.digest,
        details=model_details(details_from_config(entry.config, parent_model=parent)),
    )


def show_response(store: ModelStore, name: str | ModelName, *, verbose: bool = False) -> ShowResponse:
    """The /api/show response body."""
    view = ModelView(store, name)
    info = view.gguf()
    parent = next((x.from_ for x in view.manifest.layers_of(MEDIA_MODEL) if x.from_), "")
    template = view.template
    if template is None:
        template = info.chat_template if info is not None and info.chat_template else DEFAULT_TEMPLATE
    shown = ShowResponse(
        license="\n".join(view.licenses),
        modelfile=view.modelfile(),
        parameters=view.parameters_text(),
        template=template,
        details=model_details(details_from_config(view.config, parent_model=parent)),
        model_info=info.model_info(verbose=verbose) if info is not None else {},
        capabilities=capabilities(view, info),
        modified_at=format_time(store.manifest_mtime(view.name)),
    )
    if view.system is not None:
        shown.system = view.system
    if view.messages:
        shown.messages = view.messages
    for key in ("renderer", "parser", "requires"):
        value = view.config.get(key)
        if value:
            setattr(shown, key, str(value))
    if view.projector_paths:
        try:
            shown.projector_info = read_gguf(view.projector_paths[0], check_data=False).model_info()
        except InvalidGGUF:
            shown.projector_info = {}
    if verbose and info is not None:
        shown.tensors = [ShowTensor(t.name, t.type_name, list(t.shape)) for t in info.tensors]
    return shown


def show_builtins(store: ModelStore, name: str | ModelName, *, verbose: bool = False) -> dict[str, object]:
    """The body as plain JSON values (tests and the CLI read it so)."""
    body: dict[str, object] = msgspec.to_builtins(show_response(store, name, verbose=verbose))
    return body
