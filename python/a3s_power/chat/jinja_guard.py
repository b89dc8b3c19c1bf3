"""A Jinja chat template is run once in jinja2's sandbox, with recursion, output and time limits,
before llama.cpp's renderer (minja, C++) sees it: minja has no recursion limit, so
`{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}` overflows its stack and kills the process.

`check_jinja_template` is called when a model is created with the template (on sample messages)
and before each render (on the request's messages). Only what would crash or hang the native
renderer is refused (unbounded recursion, runaway output, a render over the time limit): other
errors (a filter jinja2 lacks, a `raise_exception`) are left to the native renderer, which
reports them as it always has.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from a3s_power.errors import InvalidRequest

MAX_OUTPUT_CHARS = 4 * 1024 * 1024  # plus what the messages themselves hold
MAX_RENDER_SECONDS = 5.0

SAMPLE_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi there."},
    {"role": "user", "content": "What is 2 + 2?"},
]


class TemplateRefused(InvalidRequest):
    """A template that would crash or hang the renderer: a 400."""


class _Ignored(Exception):
    pass


def _raise(message: str = "") -> None:
    raise _Ignored(message)


@lru_cache(maxsize=64)
def _compile(source: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals.update(raise_exception=_raise, strftime_now=lambda fmt: time.strftime(fmt))
    env.filters.setdefault("tojson", lambda v, **_: __import__("json").dumps(v))
    return env.from_string(source)


def check_jinja_template(
    source: str,
    messages: list[dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = True,
) -> None:
    """Raise TemplateRefused if rendering `source` recurses without end, writes more than the
    output limit, or runs past the time limit."""
    try:
        template = _compile(source)
    except RecursionError:
        raise TemplateRefused("template error: the template nests too deeply") from None
    except Exception:  # a syntax jinja2 rejects and minja may accept: the native renderer decides
        return
    messages = SAMPLE_MESSAGES if messages is None else messages
    budget = MAX_OUTPUT_CHARS + 4 * sum(len(str(m.get("content", ""))) for m in messages)
    context = {
        "messages": messages,
        "tools": tools or None,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "enable_thinking": True,
    }
    written = 0
    deadline = time.monotonic() + MAX_RENDER_SECONDS
    try:
        for piece in template.generate(context):
            written += len(piece)
            if written > budget:
                raise TemplateRefused(f"template error: the template writes more than {budget} characters")
            if time.monotonic() > deadline:
                raise TemplateRefused(f"template error: rendering took more than {MAX_RENDER_SECONDS:g} s")
    except RecursionError:
        raise TemplateRefused(
            "template error: the template recurses without end (a recursive macro?)"
        ) from None
    except TemplateRefused:
        raise
    except Exception:  # _Ignored, undefined names, filters jinja2 lacks: left to the native renderer
        return
