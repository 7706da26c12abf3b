"""Scores numeric answers (GSM8K, ASDiv, SVAMP, ...)."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field

from latentreason.components.answers import (
    NUMBER_BOXED_PATTERN,
    answers_equal,
    boxed_text,
    flexible_answer,
    last_number,
    parse_number,
    strict_answer,
)
from latentreason.components.evaluator import Evaluator, Score
from latentreason.components.example import Example
from latentreason.config import PluginOptions


class NumberEvaluator(Evaluator):
    """Compares the boxed (strict) or last (flexible) number with the gold number by value.

    ``"18.00"``, ``"$18"`` and ``"18"`` are equal. A gold answer that is not a
    single number (some ASDiv answers: ``"3:30 p.m."``, ``"9; 11"``, a name)
    is compared as text with the whole content of the box. Generation may
    stop at a box that holds a digit (not at the instructions' ``\\boxed{X}``).
    """

    class Options(PluginOptions):
        """Options of the number evaluator."""

        rel_tol: float = Field(1e-6, ge=0, description="relative tolerance when comparing numbers")

    options: Options
    answer_complete: ClassVar[re.Pattern[str] | None] = re.compile(NUMBER_BOXED_PATTERN)

    def score(self, generation: str, example: Example) -> Score:
        """Extract the numeric answers from ``generation`` and compare them with ``example.answer``."""
        rel_tol = self.options.rel_tol
        if parse_number(example.answer) is None:
            strict = boxed_text(generation)
            flexible = strict or last_number(generation)
        else:
            strict = strict_answer(generation, "number")
            flexible = flexible_answer(generation, "number")
        return Score(
            strict=strict,
            flexible=flexible,
            strict_correct=answers_equal(strict, example.answer, "number", rel_tol),
            flexible_correct=answers_equal(flexible, example.answer, "number", rel_tol),
        )
