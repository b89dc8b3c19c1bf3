"""`a3s-power run MODEL [PROMPT]`: Ollama's `run` (cmd/cmd.go RunHandler).

`run` is a client of the native API: of the server answering at OLLAMA_HOST (the model shows in
`ps`, `--keepalive` holds it there), else of the same server started inside this process
(`cli._inprocess`). Either way the request goes through the one chat pipeline, so a created
model's SYSTEM, PARAMETER, MESSAGE, TEMPLATE and ADAPTER layers apply. A missing model is pulled.

A prompt (words after MODEL, or piped stdin, which is put first) is one `/api/generate`; with
neither on a terminal the model is loaded and the interactive chat starts (`cli.repl`, over
`/api/chat`). An embedding model prints the prompt's vector as JSON.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

from cyclopts import Parameter

from a3s_power.bundled import DEFAULT_MODEL
from a3s_power.cli._client import Client, ClientError, fail
from a3s_power.cli.app import app
from a3s_power.errors import PowerError

THINK_LEVELS = ("high", "medium", "low", "max")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_FLAG = Parameter(negative=())


def think_flag(value: str | None) -> bool | str | None:
    """--think, --think=true|false|high|medium|low|max."""
    if value is None:
        return None
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    if value in THINK_LEVELS:
        return value
    raise ClientError(
        f'invalid value for --think: "{value}" (must be true, false, high, medium, low, or max)'
    )


def bool_flag(name: str, value: str | None) -> bool | None:
    """A Go bool flag's value (`--truncate`, `--truncate=false`)."""
    if value is None:
        return None
    if value in _GO_TRUE or value == "":
        return True
    if value in _GO_FALSE:
        return False
    raise ClientError(f'invalid argument "{value}" for "--{name}" flag: parse error')


def normalize_argv(argv: list[str]) -> list[str]:
    """Go flags with an optional value (`--think`, `--truncate`) take it only after `=`; a bare
    flag means true (so `--think high` is the flag and then a prompt word, as with Ollama)."""
    out = []
    for i, token in enumerate(argv):
        if token in ("--think", "--truncate") and (i == 0 or argv[i - 1] != "--"):
            token += "=true"
        out.append(token)
    return out


@app.command
def run(
    model: str = DEFAULT_MODEL,
    prompt_words: Annotated[list[str] | None, Parameter(name="prompt-words", show=False)] = None,
    *,
    keepalive: str | None = None,
    verbose: Annotated[bool, _FLAG] = False,
    insecure: Annotated[bool, _FLAG] = False,
    nowordwrap: Annotated[bool, _FLAG] = False,
    format: str = "",
    think: str | None = None,
    hidethinking: Annotated[bool, _FLAG] = False,
    truncate: str | None = None,
    dimensions: int = 0,
    prompt: Annotated[str | None, Parameter(name=["--prompt", "-p"])] = None,
    temperature: float | None = None,
    seed: int | None = None,
    num_predict: Annotated[int | None, Parameter(name=["--num-predict", "-n"])] = None,
    num_ctx: int | None = None,
    raw: Annotated[bool, _FLAG] = False,
) -> None:
    """Run a model: one reply to a prompt, or an interactive chat.

    Parameters
    ----------
    model
        A model name (e.g. gemma3:270m) or a path to a .gguf file.
    keepalive
        Duration to keep a model loaded (e.g. 5m).
    verbose
        Show timings for response (and llama.cpp's warnings when it runs in this process).
    insecure
        Use an insecure registry.
    nowordwrap
        Don't wrap words to the next line automatically.
    format
        Response format (e.g. json).
    think
        Enable thinking mode: --think (true), --think=false or --think=high|medium|low|max.
    hidethinking
        Hide thinking output (if provided).
    truncate
        For embedding models: truncate inputs exceeding context length (default: true). Set
        --truncate=false to error instead.
    dimensions
        Truncate output embeddings to specified dimension (embedding models only).
    prompt
        The prompt (words after MODEL are joined into it too; piped stdin goes first).
    temperature
        Sampling temperature (an option over the model's PARAMETERs).
    seed
        Random seed (an option over the model's PARAMETERs).
    num_predict
        Maximum tokens to generate (an option over the model's PARAMETERs).
    num_ctx
        Context window in tokens (an option over the model's PARAMETERs).
    raw
        Send the prompt as-is, without the model's template.
    """
    import logging

    try:
        think_value = think_flag(think)
        truncate_value = bool_flag("truncate", truncate)
        if keepalive:
            from a3s_power.durations import parse_go_duration

            parse_go_duration(keepalive)  # Go's time.ParseDuration error before anything else
    except (ClientError, PowerError) as exc:
        fail(str(exc))
    if verbose:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    words = ([prompt] if prompt is not None else []) + list(prompt_words or [])
    interactive = True
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped:
            words = [piped, *words]
        interactive = False
    text = " ".join(words)
    if words or not sys.stdout.isatty():
        interactive = False
    options: dict[str, Any] = {
        k: v
        for k, v in (
            ("temperature", temperature),
            ("seed", seed),
            ("num_predict", num_predict),
            ("num_ctx", num_ctx),
        )  # fmt: skip
        if v is not None
    }
    from a3s_power.cli._inprocess import run_server

    try:
        with run_server(model) as (client, name):
            info = show_or_pull(client, name, insecure)
            capabilities = [str(c) for c in info.get("capabilities") or []]
            if think_value is None and "thinking" in capabilities:
                think_value = True
            if "embedding" in capabilities:
                _embed(client, name, text, keepalive, truncate_value, dimensions)
                return
            if interactive:
                _interactive(client, name, info, options, think_value, keepalive, nowordwrap, hidethinking,
                             verbose, format)  # fmt: skip
                return
            images: list[str] = []
            if "vision" in capabilities:
                from a3s_power.cli._images import extract_images

                text, images = extract_images(text, sys.stderr)
            _generate(client, name, text, options, think_value, keepalive, format, raw, nowordwrap,
                      hidethinking, verbose, images)  # fmt: skip
    except ClientError as exc:
        fail(str(exc))
    except PowerError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def show_or_pull(client: Client, name: str, insecure: bool) -> dict[str, Any]:
    """/api/show; a model the server does not have (404) is pulled first, as Ollama's run does."""
    try:
        return client.call("POST", "/api/show", {"model": name}) or {}
    except ClientError as exc:
        if exc.status != 404:
            raise
    from a3s_power.cli._progress import Progress, follow
    from a3s_power.cli.transfer import _pull_label

    with Progress() as progress:
        follow(progress, client.stream("/api/pull", {"model": name, "insecure": insecure}), _pull_label)
    return client.call("POST", "/api/show", {"model": name}) or {}


def _embed(
    client: Client, name: str, text: str, keepalive: str | None, truncate: bool | None, dimensions: int
) -> None:
    if not text:
        raise ClientError(
            f'embedding models require input text. Usage: a3s-power run {name} "your text here"'
        )
    body: dict[str, Any] = {"model": name, "input": text}
    if keepalive:
        body["keep_alive"] = keepalive
    if truncate is not None:
        body["truncate"] = truncate
    if dimensions > 0:
        body["dimensions"] = dimensions
    reply = client.call("POST", "/api/embed", body) or {}
    embeddings = reply.get("embeddings") or []
    if not embeddings:
        raise ClientError("no embeddings returned")
    import orjson

    print(orjson.dumps(embeddings[0]).decode())


def _generate(
    client: Client,
    name: str,
    text: str,
    options: dict[str, Any],
    think: bool | str | None,
    keepalive: str | None,
    format: str,
    raw: bool,
    nowordwrap: bool,
    hidethinking: bool,
    verbose: bool,
    images: list[str] | None = None,
) -> None:
    from a3s_power.cli._chatview import Display, show_stream, summary

    body: dict[str, Any] = {"model": name, "prompt": text, "options": options, "stream": True}
    if images:
        body["images"] = images
    if format:
        body["format"] = format
    if think is not None:
        body["think"] = think
    if keepalive:
        body["keep_alive"] = keepalive
    if raw:
        body["raw"] = True
    tty = sys.stdout.isatty()
    display = Display(word_wrap=tty and not nowordwrap, hide_thinking=hidethinking, plain=not tty)
    reply = show_stream(client.stream("/api/generate", body), display, chat=False)
    if text:
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if verbose and reply.done:
        summary(reply.final)


def _interactive(
    client: Client,
    name: str,
    info: dict[str, Any],
    options: dict[str, Any],
    think: bool | str | None,
    keepalive: str | None,
    nowordwrap: bool,
    hidethinking: bool,
    verbose: bool,
    format: str,
) -> None:
    from a3s_power.cli._chatview import Display
    from a3s_power.cli.repl import History, Session, run_session
    from a3s_power.envvars import env_flag

    session = Session(model=name, options=dict(options), verbose=verbose, word_wrap=not nowordwrap,
                      format=format, think_explicit=think is not None)  # fmt: skip
    session.apply_show(info)
    session.think = think
    load: dict[str, Any] = {"model": name}
    if keepalive:
        load["keep_alive"] = keepalive
    if think is not None:
        load["think"] = think
    client.call("POST", "/api/generate", load)  # load the model first (errors before the prompt)
    for message in session.loaded_messages:  # the model's MESSAGE history, as Ollama shows it
        if message.get("role") == "user":
            print(f">>> {message.get('content', '')}")
        elif message.get("role") == "assistant":
            Display(word_wrap=not nowordwrap).feed("", str(message.get("content", "")))
            print("\n")
    import os

    history = History(enabled=not env_flag(os.environ, "OLLAMA_NOHISTORY"))
    run_session(client, session, keep_alive=keepalive, hide_thinking=hidethinking, history=history)


@app.command(name="help")
def help_command(*command: str) -> None:
    """Help about any command.

    Parameters
    ----------
    command
        The command to explain (none: all commands).
    """
    app.help_print(list(command))
