"""Evaluator base: extracts the final answer from a generation and scores it."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from latentreason.components.example import Example
from latentreason.config import PluginOptions


@dataclass(frozen=True)
class Score:
    """One scored generation.

    Attributes:
        strict: answer in the format the prompt asks for (``\\boxed{...}``), or None.
        flexible: answer found anywhere (last number / option letter / yes-no), or None.
        strict_correct: whether ``strict`` equals the gold answer.
        flexible_correct: whether ``flexible`` equals the gold answer.
    """

    strict: str | None
    flexible: str | None
    strict_correct: bool
    flexible_correct: bool


class Evaluator(ABC):
    """Scores generations against gold answers.

    Subclasses set ``Options`` (a :class:`PluginOptions` model) if they take
    options, and implement :meth:`score`.

    Attributes:
        answer_complete: a pattern that matches once a generation contains its
            complete final answer (a closed box holding an answer of the
            evaluator's kind, not the instructions' ``\\boxed{X}``);
            generation may stop there.
    """

    Options: ClassVar[type[PluginOptions]] = PluginOptions
    answer_complete: ClassVar[re.Pattern[str] | None] = None

    def __init__(self, options: PluginOptions) -> None:
        self.options = options

    @abstractmethod
    def score(self, generation: str, example: Example) -> Score:
        """Extract the answers from ``generation`` and compare them with ``example.answer``."""
