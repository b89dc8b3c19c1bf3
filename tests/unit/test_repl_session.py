"""The interactive session's line handling (Ollama's cmd/interactive.go): multi-line messages,
slash commands, parameters, think / format, the /save request and /show texts."""

from __future__ import annotations

from pathlib import Path

from a3s_power.cli._chatview import Display, go_duration
from a3s_power.cli.repl import HELP, PARAMETERS_HELP, SET_HELP, SHOW_HELP, Session, history_path
from a3s_power.cli.run import normalize_argv, think_flag


def test_plain_lines_are_sent_and_blank_ones_ignored() -> None:
    s = Session()
    assert s.feed("Hello there") == ("send", "Hello there")
    assert s.feed("   ") == ("none", "")
    assert s.prompt == ">>> "


def test_triple_quotes_collect_a_multi_line_message() -> None:
    s = Session()
    assert s.feed('"""First line') == ("none", "")
    assert s.prompt == "... "
    assert s.feed("second line") == ("none", "")
    assert s.feed('third"""') == ("send", "First line\nsecond line\nthird")
    assert s.prompt == ">>> "
    assert s.feed('"""one line"""') == ("send", "one line")
    assert s.feed('"""') == ("none", "") and s.feed('"""') == ("none", "")  # an empty block sends nothing


def test_commands() -> None:
    s = Session(model="m")
    assert s.feed("/bye") == ("exit", "") and s.feed("/exit") == ("exit", "")
    assert s.feed("/?") == ("say", HELP) and s.feed("/help set") == ("say", SET_HELP)
    assert s.feed("/? show") == ("say", SHOW_HELP) and s.feed("/show") == ("say", SHOW_HELP)
    assert s.feed("/set parameter temperature 0.2") == ("say", "Set parameter 'temperature' to '0.2'")
    assert s.options == {"temperature": 0.2}
    assert s.feed("/set parameter stop <|im_end|> END") == (
        "say",
        "Set parameter 'stop' to '<|im_end|>, END'",
    )
    assert s.options["stop"] == ["<|im_end|>", "END"]
    assert (
        s.feed("/set parameter num_predict lots")[1] == 'Couldn\'t set parameter: "invalid int value [lots]"'
    )
    assert (
        s.feed("/set parameter nonsense 1")[1] == "Couldn't set parameter: \"unknown parameter 'nonsense'\""
    )
    assert s.feed("/set parameter") == ("say", PARAMETERS_HELP)
    assert s.feed("/set verbose") == ("say", "Set 'verbose' mode.") and s.verbose
    assert s.feed("/set nowordwrap") == ("say", "Set 'nowordwrap' mode.") and not s.word_wrap
    assert s.feed("/set nohistory") == ("none", "") and not s.history
    assert s.feed("/set bogus") == ("say", "Unknown command '/set bogus'. Type /? for help")
    assert s.feed("/nope") == ("say", "Unknown command '/nope'. Type /? for help")
    assert s.feed("/show template") == ("show", "template")
    assert s.feed("/load") == ("say", "Usage:\n  /load <modelname>")
    assert s.feed("/load other:1b") == ("load", "other:1b") and s.feed("/save mine") == ("save", "mine")
    assert s.feed("/list") == ("list", "")


def test_system_messages_and_clear_follow_ollama() -> None:
    s = Session(model="m")
    assert s.feed('/set system """You are terse."""') == ("say", "Set system message.")
    assert s.conversation("hi") == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
    ]
    assert s.feed("/set system Be kind.") == ("say", "Set system message.")  # replaces a last system
    assert s.messages == [{"role": "system", "content": "Be kind."}]
    assert s.feed('/set system """Line one') == ("none", "") and s.prompt == "... "
    assert s.feed('line two"""') == ("say", "Set system message.")
    assert s.system == "Line one\nline two" and len(s.messages) == 1
    s.messages.append({"role": "user", "content": "x"})
    assert s.feed("/clear") == ("say", "Cleared session context")
    assert s.messages == [{"role": "system", "content": "Line one\nline two"}]  # the system stays


def test_think_and_format() -> None:
    s = Session(model="smol")
    s.apply_show({"capabilities": ["completion"], "details": {"parent_model": ""}})
    assert s.think is None
    said = s.feed("/set think")[1]
    assert said == "warning: model \"smol\" does not support thinking output\nSet 'think' mode."
    assert s.think is True and s.chat_request("q")["think"] is True
    s.capabilities = ["completion", "thinking"]
    assert s.feed("/set think high") == ("say", "Set 'think' mode to 'high'.") and s.think == "high"
    assert s.feed("/set nothink") == ("say", "Set 'nothink' mode.") and s.think is False
    assert (
        s.feed("/set format yaml")[1] == "Invalid or missing format. For 'json' mode use '/set format json'"
    )
    assert s.feed("/set format json") == ("say", "Set format to 'json' mode.")
    assert s.chat_request("q", "10m") == {
        "model": "smol", "messages": [{"role": "user", "content": "q"}], "options": {}, "stream": True,
        "format": "json", "think": False, "keep_alive": "10m",
    }  # fmt: skip
    assert s.feed("/set noformat") == ("say", "Disabled format.") and "format" not in s.chat_request("q")
    thinker = Session(model="t")
    thinker.apply_show({"capabilities": ["completion", "thinking"]})
    assert thinker.think is True  # Ollama turns thinking on for a thinking model unless told


def test_save_request_carries_the_session() -> None:
    s = Session(model="smol:latest")
    s.apply_show(
        {"details": {"parent_model": "smollm2:135m"}, "messages": [{"role": "user", "content": "hi"}]}
    )
    s.feed("/set system Be brief.")
    s.feed("/set parameter num_predict 3")
    s.messages += [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert s.create_request("mine") == {
        "model": "mine",
        "from": "smollm2:135m",
        "stream": False,
        "system": "Be brief.",
        "parameters": {"num_predict": 3},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ],
    }
    assert Session(model="x").create_request("y") == {"model": "y", "from": "x", "stream": False}


def test_show_texts() -> None:
    s = Session(model="m")
    info = {"parameters": 'stop "<|im_end|>"', "system": "From the model.", "template": "{{ .Prompt }}",
            "license": "", "modelfile": "FROM x"}  # fmt: skip
    assert s.show_text("system", info) == "From the model.\n"
    assert s.show_text("template", info) == "{{ .Prompt }}"
    assert s.show_text("license", info) == "No license was specified for this model."
    s.feed("/set parameter seed 7")
    assert s.show_text("parameters", info) == (
        'Model defined parameters:\n  stop "<|im_end|>"\n\nUser defined parameters:\n'
        "  seed                           7\n"
    )
    assert s.show_text("nope", info) == "Unknown command '/show nope'. Type /? for help"


def test_run_flags() -> None:
    assert normalize_argv(["run", "m", "--think", "hi"]) == ["run", "m", "--think=true", "hi"]
    assert normalize_argv(["run", "m", "--think=low", "--truncate"]) == [
        "run",
        "m",
        "--think=low",
        "--truncate=true",
    ]
    assert think_flag(None) is None and think_flag("true") is True and think_flag("false") is False
    assert think_flag("max") == "max"
    try:
        think_flag("extreme")
    except Exception as exc:  # noqa: BLE001
        assert (
            str(exc)
            == 'invalid value for --think: "extreme" (must be true, false, high, medium, low, or max)'
        )
    else:
        raise AssertionError("no error")


def test_thinking_is_shown_apart_from_the_answer() -> None:
    import io

    out = io.StringIO()
    display = Display(out=out, word_wrap=False, plain=True)
    for thinking, content in [("Let me", ""), (" think.", ""), ("", "Four."), ("", " Done")]:
        display.feed(thinking, content)
    assert out.getvalue() == "Thinking...\nLet me think.\n...done thinking.\n\nFour. Done"
    hidden = io.StringIO()
    Display(out=hidden, word_wrap=False, plain=True, hide_thinking=True).feed("secret", "answer")
    assert hidden.getvalue() == "answer"
    calls = io.StringIO()
    Display(out=calls, word_wrap=False, plain=True).feed(
        "", "", [{"function": {"name": "f", "arguments": {"a": 1}}}]
    )
    assert calls.getvalue() == "  Model called a non-existent function 'f()' with arguments: {\"a\":1}"


def test_go_durations_and_history_path() -> None:
    assert go_duration(1_500_000_000) == "1.5s" and go_duration(12_345_678) == "12.345678ms"
    assert (
        go_duration(900_000) == "900µs"
        and go_duration(125_500_000_000) == "2m5.5s"
        and go_duration(5) == "5ns"
    )
    assert history_path({"HOME": "/home/u"}) == Path("/home/u/.ollama/history")
