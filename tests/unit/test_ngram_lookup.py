"""The engine's prompt-lookup drafter (`ngram_lookup` in cpp/core/speculative.cpp): what it proposes
decides how much of a copy speculative decoding saves, so its rules are pinned here on token lists."""

from __future__ import annotations

from a3s_power._native import ngram_lookup


def test_the_aligned_occurrence_wins_over_the_most_recent() -> None:
    # a "code block" where the 3-gram (7, 8, 9) recurs: the copy so far ends "... 4 5 7 8 9", which
    # agrees for longest with the first occurrence (followed by 10 11 12 ...), not the later one
    source = [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 50, 51, 7, 8, 9, 60, 61, 62]
    copy = [1, 2, 3, 4, 5, 7, 8, 9]
    assert ngram_lookup(source + [99] + copy, 8) == [10, 11, 12, 13, 14, 15, 16, 17]


def test_ties_go_to_the_most_recent_occurrence() -> None:
    context = [5, 1, 2, 3, 40, 41, 6, 1, 2, 3, 50, 51, 7, 1, 2, 3]
    assert ngram_lookup(context, 2) == [50, 51]


def test_a_short_match_proposes_a_short_draft() -> None:
    # only the last 3 tokens match: at most 4 tokens; a 6-token alignment may use the whole n_draft
    weak = [9, 1, 2, 3] + list(range(100, 120)) + [8, 1, 2, 3]
    assert ngram_lookup(weak, 16) == list(range(100, 104))
    strong = [4, 5, 6, 1, 2, 3] + list(range(100, 120)) + [4, 5, 6, 1, 2, 3]
    assert ngram_lookup(strong, 16) == list(range(100, 116))


def test_no_match_or_no_room_proposes_nothing() -> None:
    assert ngram_lookup([1, 2, 3, 4, 5, 6], 8) == []
    assert ngram_lookup([1, 2, 3, 1, 2, 3], 0) == []
    assert ngram_lookup([1, 2], 8) == []
    # the draft never runs past the end of the context (a 6-token alignment, 8 asked, 7 there)
    assert ngram_lookup([4, 5, 6, 1, 2, 3, 7, 4, 5, 6, 1, 2, 3], 8) == [7, 4, 5, 6, 1, 2, 3]
