"""One problem: the :class:`Example` every task yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AnswerType = Literal["number", "choice", "yesno"]


@dataclass(frozen=True)
class Example:
    """One problem, in the schema of the project's JSONL files.

    Attributes:
        id: stable id, unique within the dataset.
        question: the problem text (options not included).
        answer: gold final answer (a number, an option letter, or Yes/No).
        choices: ``("A) ...", "B) ...")`` for multiple choice, else empty.
        rationale: gold worked solution, where the source has one.
        meta: source-specific extras.
    """

    id: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    rationale: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
