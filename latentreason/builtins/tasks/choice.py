"""Multiple-choice tasks: AQuA-RAT, BIG-bench Date Understanding, BIG-bench MathQA."""

from __future__ import annotations

import random
import re
from typing import Any

from latentreason.builtins.tasks.common import DATA_ROOT, prompts
from latentreason.components.example import Example
from latentreason.components.task import HubSource, TaskSpec

_WHAT = "the letter of the correct option"
_OPTION = re.compile(r"\s*\(?([A-Z])\)\s*")
_PROMPT_MARKS = re.compile(r"^\s*Q:\s*|\s*A:\s*$")


def _aqua_row(row: dict[str, Any], fallback_id: str) -> Example:
    """A ``deepmind/aqua_rat`` row: options like ``"A)125"`` become ``"A) 125"``."""
    choices = []
    for option in row["options"]:
        prefix = _OPTION.match(option)
        if not prefix:
            raise ValueError(f"option {option!r} does not start with a letter and ')'")
        choices.append(f"{prefix[1]}) {option[prefix.end() :].strip()}")
    return Example(
        id=fallback_id,
        question=row["question"].strip(),
        answer=row["correct"].strip().upper(),
        choices=tuple(choices),
        rationale=row.get("rationale") or None,
    )


def _bigbench_row(row: dict[str, Any], fallback_id: str, shuffle: bool) -> Example:
    """A ``tasksource/bigbench`` multiple-choice row.

    Args:
        row: the row (``inputs``, ``multiple_choice_targets``, ``multiple_choice_scores``).
        fallback_id: the example's id.
        shuffle: shuffle the options, seeded by the id (for sources that list
            the correct option first).
    """
    options = list(zip(row["multiple_choice_targets"], row["multiple_choice_scores"], strict=True))
    if shuffle:
        random.Random(fallback_id).shuffle(options)
    correct = [i for i, (_, score) in enumerate(options) if score == 1]
    if len(correct) != 1:
        raise ValueError(f"expected exactly one correct option, found {len(correct)}")
    letters = [chr(ord("A") + i) for i in range(len(options))]
    return Example(
        id=fallback_id,
        question=_PROMPT_MARKS.sub("", row["inputs"]).strip(),
        answer=letters[correct[0]],
        choices=tuple(f"{letter}) {text.strip()}" for letter, (text, _) in zip(letters, options, strict=True)),
        meta={"answer_text": options[correct[0]][0]},
    )


def _date_row(row: dict[str, Any], fallback_id: str) -> Example:
    """BIG-bench date_understanding lists the correct date first; shuffle it."""
    return _bigbench_row(row, fallback_id, shuffle=True)


def _mathqa_row(row: dict[str, Any], fallback_id: str) -> Example:
    """BIG-bench elementary_math_qa already spreads the correct option."""
    return _bigbench_row(row, fallback_id, shuffle=False)


AQUA = TaskSpec(
    name="aqua",
    description="AQuA-RAT algebra word problems with five options (train split: official dev set).",
    answer_type="choice",
    evaluator="choice",
    **prompts("Solve the algebra word problem and choose one of the answer choices.", _WHAT),
    eval_split="test",
    train_split="validation",
    data_dir=DATA_ROOT / "aqua",
    hub=HubSource(
        "deepmind/aqua_rat", "raw", {"train": "train", "validation": "validation", "test": "test"}, _aqua_row
    ),
    license="Apache-2.0",
    source="Ling et al. 2017, github.com/google-deepmind/AQuA",
)

DATE_UNDERSTANDING = TaskSpec(
    name="date_understanding",
    description=(
        "BIG-bench Date Understanding: infer a date (MM/DD/YYYY) from a description. Its only local split "
        "is train (the test split is held out), so evaluation defaults to train."
    ),
    answer_type="choice",
    evaluator="choice",
    **prompts("Work out the date the question asks for and choose one of the answer choices.", _WHAT),
    eval_split="train",
    train_split="train",
    data_dir=DATA_ROOT / "date_understanding",
    hub=HubSource("tasksource/bigbench", "date_understanding", {"train": "train", "test": "validation"}, _date_row),
    license="Apache-2.0 (BIG-bench)",
    source="BIG-bench (Srivastava et al. 2022), task date_understanding",
)

MATHQA_BIGBENCH = TaskSpec(
    name="mathqa_bigbench",
    description="MathQA problems as BIG-bench elementary_math_qa, with 5 options (rationale: operation hints).",
    answer_type="choice",
    evaluator="choice",
    **prompts("Solve the math problem and choose one of the answer choices.", _WHAT),
    eval_split="test",
    train_split="train",
    hub=HubSource("tasksource/bigbench", "elementary_math_qa", {"train": "train", "test": "validation"}, _mathqa_row),
    license="Apache-2.0 (BIG-bench)",
    source="Amini et al. 2019 (MathQA), via BIG-bench task elementary_math_qa (not shipped)",
)
