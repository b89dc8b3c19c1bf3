"""The interactive session's line handling: multi-line messages, slash commands, parameters."""

from __future__ import annotations

from a3s_power.cli.repl import HELP, Session


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
    s = Session()
    assert s.feed("/bye") == ("exit", "") and s.feed("/exit") == ("exit", "")
    assert s.feed("/?") == ("say", HELP)
    assert s.feed("/set parameter temperature 0.2") == ("say", "Set parameter 'temperature' to '0.2'")
    assert s.options == {"temperature": 0.2}
    assert s.feed("/set parameter stop <|im_end|> END") == (
        "say",
        "Set parameter 'stop' to '<|im_end|>, END'",
    )
    assert s.options["stop"] == ["<|im_end|>", "END"]
    assert s.feed("/set parameter num_predict lots")[1] == "Couldn't set parameter: invalid int value [lots]"
    assert s.feed("/set parameter nonsense 1")[1] == "Couldn't set parameter: unknown parameter 'nonsense'"
    assert s.feed('/set system "You are terse."') == ("say", "Set system message.")
    assert s.conversation("hi") == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
    ]
    assert s.feed("/show system") == ("say", "You are terse.")
    assert s.feed("/set verbose") == ("say", "Set 'verbose' mode.") and s.verbose
    s.messages.append({"role": "user", "content": "x"})
    assert s.feed("/clear") == ("say", "Cleared session context") and s.messages == []
    assert s.feed("/nope") == ("say", "Unknown command '/nope'. Type /? for help")
