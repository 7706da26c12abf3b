"""Majority voting (self-consistency)."""

from __future__ import annotations

import pytest

from latentreason.assembly.voting import majority_vote
from latentreason.components.evaluator import Score
from latentreason.config import GenerationConfig


def s(answer, ok):
    return Score(answer, answer, ok, ok)


def test_majority_wins():
    assert majority_vote([s("3", False), s("5", True), s("5", True)]) == s("5", True)


def test_ties_go_to_the_answer_seen_first():
    assert majority_vote([s("7", False), s("5", True), s("5", True), s("7", False)]).strict == "7"


def test_a_missing_answer_never_wins():
    assert majority_vote([s(None, False), s(None, False), s("4", True)]) == s("4", True)
    assert majority_vote([s(None, False)] * 3) == s(None, False)


def test_strict_and_flexible_vote_separately():
    scores = [Score(None, "2", False, True), Score(None, "2", False, True), Score("9", "9", False, False)]
    assert majority_vote(scores) == Score("9", "2", False, True)


def test_samples_need_sampling():
    with pytest.raises(ValueError, match="do_sample"):
        GenerationConfig(samples=3)
