"""Scores multiple-choice answers (AQuA, Date Understanding, MathQA)."""

from __future__ import annotations

import re
from typing import ClassVar

from latentreason.components.answers import CHOICE_BOXED_PATTERN, answers_equal, flexible_answer, strict_answer
from latentreason.components.evaluator import Evaluator, Score
from latentreason.components.example import Example


class ChoiceEvaluator(Evaluator):
    """Compares the option letter in the box (strict) or named last (flexible) with the gold letter.

    An answer given as an option's text (``\\boxed{125}`` for ``"A) 125"``)
    counts as that option's letter. Generation may stop at a box that holds
    anything but the instructions' placeholder (``\\boxed{X}``).
    """

    answer_complete: ClassVar[re.Pattern[str] | None] = re.compile(CHOICE_BOXED_PATTERN)

    def score(self, generation: str, example: Example) -> Score:
        """Extract the option letters from ``generation`` and compare them with ``example.answer``."""
        strict = strict_answer(generation, "choice", example.choices)
        flexible = flexible_answer(generation, "choice", example.choices)
        return Score(
            strict=strict,
            flexible=flexible,
            strict_correct=answers_equal(strict, example.answer, "choice"),
            flexible_correct=answers_equal(flexible, example.answer, "choice"),
        )
