"""Pieces shared by the built-in task definitions."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from latentreason.components.answers import format_number

#: The data shipped inside the package: ``data/<task>/<split>.jsonl``.
DATA_ROOT = Path(__file__).resolve().parent.parent / "data"


def final_answer_rule(what: str) -> str:
    """The instruction sentence that fixes the answer format.

    Args:
        what: what goes in the box, e.g. ``"the letter of the correct option"``.

    Returns:
        The sentence asking for step-by-step reasoning and a boxed answer.
    """
    return (
        "Think step by step and write out your reasoning, then end your response with the sentence "
        f'"The final answer is \\boxed{{X}}." where X is {what}.'
    )


def concise_answer_rule(what: str) -> str:
    """The answer-format sentences of the SoftCoT reference wording (prompt style ``softcot``).

    Args:
        what: what goes in the box, e.g. ``"the letter of the correct option"``.

    Returns:
        Sentences asking for efficient, short ``## Step`` lines and a boxed final answer.
    """
    return (
        "Solve it efficiently and clearly: write short steps, each on its own line starting with "
        f'"## Step k:", and end with "Therefore, the final answer is: $\\boxed{{X}}$." where X is {what}.'
    )


def prompts(goal: str, what: str) -> dict[str, Any]:
    """A task's system prompts, as :class:`~latentreason.components.task.TaskSpec` fields.

    Args:
        goal: the sentence that says what to do, e.g. ``"Solve the math word problem."``.
        what: what goes in the box.

    Returns:
        ``{"instruction": default prompt, "instructions": {style: prompt}}``.
    """
    return {
        "instruction": f"{goal} {final_answer_rule(what)}",
        "instructions": {"softcot": f"{goal} {concise_answer_rule(what)}"},
    }


def number_text(value: Any) -> str:
    """A hub answer (``51.0``, ``"1,234"``) in the datasets' number form (``"51"``, ``"1234"``).

    Args:
        value: an int, float or numeric string.

    Returns:
        The number without separators or a trailing ``.0``.

    Raises:
        ValueError: if the value is not a number.
    """
    return format_number(Fraction(str(value).replace(",", "").strip()))
