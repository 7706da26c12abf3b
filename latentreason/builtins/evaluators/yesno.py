"""Scores yes/no answers (StrategyQA)."""

from __future__ import annotations

import re
from typing import ClassVar

from latentreason.components.answers import YESNO_BOXED_PATTERN, answers_equal, flexible_answer, strict_answer
from latentreason.components.evaluator import Evaluator, Score
from latentreason.components.example import Example


class YesNoEvaluator(Evaluator):
    """Compares the boxed (strict) or last (flexible) yes/no with the gold answer.

    True and false in the box count as yes and no. Generation may stop at a box
    that starts with one of these words.
    """

    answer_complete: ClassVar[re.Pattern[str] | None] = re.compile(YESNO_BOXED_PATTERN)

    def score(self, generation: str, example: Example) -> Score:
        """Extract yes/no from ``generation`` and compare it with ``example.answer``."""
        strict = strict_answer(generation, "yesno")
        flexible = flexible_answer(generation, "yesno")
        return Score(
            strict=strict,
            flexible=flexible,
            strict_correct=answers_equal(strict, example.answer, "yesno"),
            flexible_correct=answers_equal(flexible, example.answer, "yesno"),
        )
