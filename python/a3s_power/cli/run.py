"""`a3s-power run MODEL [PROMPT]`: stream a reply from a local model."""

from __future__ import annotations

import sys
from typing import Annotated

from cyclopts import Parameter

from a3s_power.bundled import DEFAULT_MODEL
from a3s_power.cli.app import app
from a3s_power.errors import PowerError


@app.command
def run(
    model: str = DEFAULT_MODEL,
    prompt_words: Annotated[list[str] | None, Parameter(name="prompt-words", show=False)] = None,
    *,
    prompt: Annotated[str | None, Parameter(name=["--prompt", "-p"])] = None,
    temperature: float = 0.8,
    seed: int = -1,
    num_predict: Annotated[int, Parameter(name=["--num-predict", "-n"])] = 256,
    num_ctx: int = 4096,
    raw: bool = False,
    verbose: bool = False,
) -> None:
    """Run a model on a prompt and stream the reply.

    Parameters
    ----------
    model
        A model name (e.g. gemma3:270m) or a path to a .gguf file.
    prompt
        The prompt. Words after MODEL are joined into the prompt too; stdin is read when neither is
        given; on a terminal with no prompt, an interactive chat starts (/? for help, /bye to leave).
    temperature
        Sampling temperature (0 = greedy).
    seed
        Random seed (-1 = random).
    num_predict
        Maximum tokens to generate (-1 = until the model stops).
    num_ctx
        Context window in tokens.
    raw
        Send the prompt as-is, without the model's chat template.
    verbose
        Print timings after the reply (like `ollama run --verbose`) and llama.cpp's warnings.
    """
    import logging

    from a3s_power.cli.resolve import resolve_model
    from a3s_power.runtime import Completion, GenerationOptions, generate_sync, load_model

    if verbose:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    text = prompt if prompt is not None else " ".join(prompt_words or [])
    if not text and not sys.stdin.isatty():
        text = sys.stdin.read()
    interactive = not text and sys.stdin.isatty()
    if not text and not interactive:
        print("Error: no prompt given (use --prompt or pass it after the model name)", file=sys.stderr)
        raise SystemExit(1)
    try:
        path = resolve_model(model)
        loaded = load_model(path, num_ctx=num_ctx)
    except (PowerError, FileNotFoundError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if interactive:
        from a3s_power.cli.repl import run_session

        try:
            base = GenerationOptions(temperature=temperature, seed=seed, num_predict=num_predict)
            run_session(loaded, base, stats=_print_stats)
        finally:
            loaded.close()
        return
    try:
        if raw:
            tokens = loaded.tokenize(text, add_special=True, parse_special=False)
        else:
            rendered = loaded.render_chat([{"role": "user", "content": text}])
            tokens = loaded.tokenize(rendered.prompt, add_special=True, parse_special=True)
        options = GenerationOptions(temperature=temperature, seed=seed, num_predict=num_predict)
        final: Completion | None = None
        for item in generate_sync(loaded, tokens, options):
            if isinstance(item, Completion):
                final = item
            else:
                sys.stdout.write(item.text)
                sys.stdout.flush()
        sys.stdout.write("\n")
        if verbose and final is not None:
            _print_stats(final)
    except PowerError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        loaded.close()


def _print_stats(c: object) -> None:
    from a3s_power.runtime import Completion

    assert isinstance(c, Completion)
    pe_s = c.prompt_eval_duration / 1e9
    ev_s = c.eval_duration / 1e9
    print(f"prompt eval count:    {c.prompt_eval_count} token(s)", file=sys.stderr)
    print(f"prompt eval duration: {pe_s * 1000:.1f}ms", file=sys.stderr)
    if pe_s > 0:
        print(f"prompt eval rate:     {c.prompt_eval_count / pe_s:.2f} tokens/s", file=sys.stderr)
    print(f"eval count:           {c.eval_count} token(s)", file=sys.stderr)
    print(f"eval duration:        {ev_s * 1000:.1f}ms", file=sys.stderr)
    if ev_s > 0:
        print(f"eval rate:            {c.eval_count / ev_s:.2f} tokens/s", file=sys.stderr)
