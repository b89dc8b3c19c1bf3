"""Ollama's Go TEMPLATE layers: a renderer for the `text/template` subset Ollama's library
templates use (`parse`, `execute`, `values`) and Ollama's rules for the data they get (`ollama`)."""

from a3s_power.chat.gotemplate.execute import GoTemplateExecError
from a3s_power.chat.gotemplate.ollama import (
    GoTemplate,
    check_go_template,
    infer_thinking_tags,
    is_go_template,
    parse_go_template,
    render_go_template,
    think_values,
)
from a3s_power.chat.gotemplate.parse import GoTemplateError

__all__ = [
    "GoTemplate",
    "GoTemplateError",
    "GoTemplateExecError",
    "check_go_template",
    "infer_thinking_tags",
    "is_go_template",
    "parse_go_template",
    "render_go_template",
    "think_values",
]
