"""Majority voting over sampled chains (self-consistency)."""

from __future__ import annotations

from collections import Counter

from latentreason.components.evaluator import Score


def _vote(pairs: list[tuple[str | None, bool]]) -> tuple[str | None, bool]:
    """The most frequent answer and its correctness; ties go to the answer seen first.

    A missing answer (None) never wins; with no answer at all the result is (None, False).
    """
    answers = [a for a, _ in pairs if a is not None]
    if not answers:
        return None, False
    counts = Counter(answers)
    best = max(counts.values())
    winner = next(a for a in answers if counts[a] == best)
    return winner, next(ok for a, ok in pairs if a == winner)


def majority_vote(scores: list[Score]) -> Score:
    """Combine the scores of several chains for one question into one.

    Strict and flexible answers are voted separately.
    """
    strict, strict_ok = _vote([(s.strict, s.strict_correct) for s in scores])
    flexible, flexible_ok = _vote([(s.flexible, s.flexible_correct) for s in scores])
    return Score(strict, flexible, strict_ok, flexible_ok)
