"""Reading dataset rows into :class:`~latentreason.components.example.Example`: every problem of every row, at once."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from latentreason.components.example import AnswerType, Example
from latentreason.errors import LatentReasonError

_MAX_PROBLEMS = 5


_LETTER_PREFIX = re.compile(r"\s*\(?([A-Z])\)\s*")


SCHEMA = (
    "Each line must be a JSON object with the fields id (string), question (string) and "
    "answer (string; a number, an option letter or Yes/No), and optionally choices "
    '(list of strings like "A) 12"), rationale (string) and meta (object).'
)


def nonempty(chosen: list[Example], total: int, offset: int, where: str) -> list[Example]:
    if total == 0:
        raise LatentReasonError(f"There are no examples in {where}. Choose another split or data source.")
    if not chosen:
        raise LatentReasonError(f"Offset {offset} is past the end of {where}, which has {total} examples.")
    return chosen


def repeated_ids(examples: list[Example], numbers: list[int], unit: str) -> list[str]:
    """One problem per example whose id an earlier one already has (results are kept by id).

    Args:
        examples: the loaded examples.
        numbers: the line or row number of each.
        unit: ``"line"`` or ``"row"``, for the messages.
    """
    first: dict[str, int] = {}
    problems = []
    for example, number in zip(examples, numbers):
        earlier = first.setdefault(example.id, number)
        if earlier != number:
            problems.append(f"{unit} {number}: id {example.id!r} is already used on {unit} {earlier}")
    return problems


def problems_error(where: str, problems: list[str], hint: str) -> LatentReasonError:
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
    return LatentReasonError(f"Found {len(problems)} invalid row(s) in {where}: {shown}{more}. {hint}")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _text_field(value: Any, key: str, problems: list[str], *, numbers: bool = False) -> str | None:
    if value is None:
        problems.append(f"missing field {key!r}")
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if numbers and isinstance(value, float):
        if not math.isfinite(value):
            problems.append(f"field {key!r} must be a finite number, not {value}")
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if not isinstance(value, str):
        problems.append(f"field {key!r} must be a string, not {_json_type(value)}")
        return None
    if not value.strip():
        problems.append(f"field {key!r} is empty")
        return None
    return value


def _choices_field(value: Any, problems: list[str]) -> tuple[str, ...] | None:
    """Options normalised to ``"A) text"``; None (with a problem) if ill-typed."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        problems.append(f"field 'choices' must be a list of non-empty strings, not {_json_type(value)}")
        return None
    choices = []
    for index, choice in enumerate(value):
        prefix = _LETTER_PREFIX.match(choice)
        letter, text = (prefix[1], choice[prefix.end() :]) if prefix else (chr(ord("A") + index), choice)
        choices.append(f"{letter}) {text.strip()}")
    letters = [c[0] for c in choices]
    if len(set(letters)) < len(letters) or not all("A" <= letter <= "Z" for letter in letters):
        problems.append(f"field 'choices' must give each option its own letter A-Z (got {', '.join(letters)})")
        return None
    return tuple(choices)


def _typed_answer(answer: str, answer_type: AnswerType, choices: Iterable[str], problems: list[str]) -> str | None:
    """The answer checked against, and normalised for, the answer type."""
    answer = answer.strip()
    if answer_type == "choice":
        letters = [c[0] for c in choices]
        if not letters:
            problems.append("missing field 'choices' (needed for a multiple-choice task)")
        elif answer.upper() not in letters:
            problems.append(f"answer {answer!r} is not one of the option letters {', '.join(letters)}")
        else:
            return answer.upper()
        return None
    if answer_type == "yesno":
        if answer.casefold() not in ("yes", "no"):
            problems.append(f"answer {answer!r} is not Yes or No")
            return None
        return answer.capitalize()
    return answer


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string that is not valid Unicode text (it cannot be written as UTF-8)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def example_from_row(row: Any, answer_type: AnswerType) -> tuple[Example | None, list[str]]:
    """Validate one row of the project's schema and build its :class:`Example`.

    Args:
        row: the parsed JSON value.
        answer_type: the task's answer type, which the answer must fit.

    Returns:
        The example (None if the row is invalid) and the problems found.
    """
    if not isinstance(row, dict):
        return None, [f"expected a JSON object, not {_json_type(row)}"]
    if _has_lone_surrogate(row):
        return None, ["a string holds an unpaired surrogate escape such as \\ud800, which encodes no character"]
    problems: list[str] = []
    ident = _text_field(row.get("id"), "id", problems, numbers=True)
    question = _text_field(row.get("question"), "question", problems)
    raw_answer = row.get("answer")
    if isinstance(raw_answer, bool) and answer_type == "yesno":
        raw_answer = "Yes" if raw_answer else "No"
    answer = _text_field(raw_answer, "answer", problems, numbers=True)
    choices = _choices_field(row.get("choices"), problems)
    if answer is not None and choices is not None:
        answer = _typed_answer(answer, answer_type, choices, problems)
    rationale = row.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        problems.append(f"field 'rationale' must be a string, not {_json_type(rationale)}")
    meta = row.get("meta")
    if meta is not None and not isinstance(meta, dict):
        problems.append(f"field 'meta' must be an object, not {_json_type(meta)}")
    if problems or ident is None or question is None or answer is None or choices is None:
        return None, problems
    return Example(
        id=ident, question=question, answer=answer, choices=choices, rationale=rationale, meta=meta or {}
    ), []
