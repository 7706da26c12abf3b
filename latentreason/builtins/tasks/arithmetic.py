"""Arithmetic word-problem tasks with a numeric answer: GSM8K, ASDiv, ASDiv-Aug, SVAMP, MultiArith."""

from __future__ import annotations

import re
from typing import Any

from latentreason.builtins.tasks.common import DATA_ROOT, number_text, prompts
from latentreason.components.example import Example
from latentreason.components.task import HubSource, TaskSpec

_WHAT = "the final number alone, without units"
_UNIT = re.compile(r"\s*\([^)]*\)")


def _hashes_row(row: dict[str, Any], fallback_id: str) -> Example:
    """A GSM8K-style row: ``answer`` is the worked solution, then ``#### <number>``."""
    rationale, marker, final = row["answer"].rpartition("####")
    if not marker:
        raise ValueError("the answer has no '####' before the final number")
    return Example(
        id=fallback_id,
        question=row["question"].strip(),
        answer=final.strip().replace(",", ""),
        rationale=rationale.strip() or None,
    )


def _asdiv_row(row: dict[str, Any], fallback_id: str) -> Example:
    """An ``EleutherAI/asdiv`` row; units in the answer (``"9 (apples)"``) are dropped."""
    return Example(
        id=fallback_id,
        question=f"{row['body'].strip()} {row['question'].strip()}",
        answer=_UNIT.sub("", row["answer"]).strip(),
        meta={"answer_raw": row["answer"], "formula": row.get("formula"), "solution_type": row.get("solution_type")},
    )


def _svamp_row(row: dict[str, Any], fallback_id: str) -> Example:
    """A ``ChilleD/SVAMP`` row: ``Body`` and ``Question`` are joined."""
    return Example(
        id=str(row.get("ID") or fallback_id),
        question=f"{row['Body'].strip()} {row['Question'].strip()}",
        answer=number_text(row["Answer"]),
        meta={"equation": row.get("Equation"), "type": row.get("Type")},
    )


def _multiarith_row(row: dict[str, Any], fallback_id: str) -> Example:
    """A ``ChilleD/MultiArith`` row (``question``, ``final_ans``)."""
    return Example(id=fallback_id, question=row["question"].strip(), answer=number_text(row["final_ans"]))


GSM8K = TaskSpec(
    name="gsm8k",
    description="GSM8K grade-school math word problems (numeric answer).",
    answer_type="number",
    evaluator="number",
    **prompts("Solve the grade-school math word problem.", _WHAT),
    eval_split="test",
    train_split="train",
    data_dir=DATA_ROOT / "gsm8k",
    hub=HubSource("openai/gsm8k", "main", {"train": "train", "test": "test"}, _hashes_row),
    license="MIT",
    source="Cobbe et al. 2021, github.com/openai/grade-school-math (shipped: test, first 2000 train problems)",
)

ASDIV = TaskSpec(
    name="asdiv",
    description="ASDiv diverse math word problems (numeric answer; a few answers are not numbers).",
    answer_type="number",
    evaluator="number",
    **prompts("Solve the math word problem.", _WHAT),
    eval_split="test",
    train_split="train",
    hub=HubSource("EleutherAI/asdiv", None, {"test": "validation"}, _asdiv_row),
    license="CC BY-NC 4.0 (non-commercial)",
    source="Miao et al. 2020, github.com/chaochun/nlu-asdiv-dataset (not shipped)",
)

ASDIV_AUG = TaskSpec(
    name="asdiv_aug",
    description="ASDiv-Aug, number-substituted ASDiv problems released with SoftCoT (evaluation only offline).",
    answer_type="number",
    evaluator="number",
    **prompts("Solve the math word problem.", _WHAT),
    eval_split="test",
    train_split=None,
    hub=HubSource("xuyige/ASDiv-Aug", None, {"train": "train", "test": "test"}, _hashes_row),
    license="non-commercial (derived from ASDiv, CC BY-NC 4.0)",
    source="Xu et al. 2025 (SoftCoT), huggingface.co/datasets/xuyige/ASDiv-Aug (not shipped)",
)

SVAMP = TaskSpec(
    name="svamp",
    description="SVAMP challenge set of varied one-step and two-step word problems (evaluation only).",
    answer_type="number",
    evaluator="number",
    **prompts("Solve the math word problem.", _WHAT),
    eval_split="test",
    train_split=None,
    data_dir=DATA_ROOT / "svamp",
    hub=HubSource("ChilleD/SVAMP", None, {"test": "test"}, _svamp_row),
    license="MIT",
    source="Patel et al. 2021, github.com/arkilpatel/SVAMP",
)

MULTIARITH = TaskSpec(
    name="multiarith",
    description="MultiArith multi-step arithmetic word problems (evaluation only).",
    answer_type="number",
    evaluator="number",
    **prompts("Solve the math word problem.", _WHAT),
    eval_split="test",
    train_split=None,
    hub=HubSource("ChilleD/MultiArith", None, {"test": "test"}, _multiarith_row),
    license="none stated (research use)",
    source="Roy & Roth 2015, via github.com/kojima-takeshi188/zero_shot_cot (not shipped)",
)
