"""Yes/no tasks: StrategyQA."""

from __future__ import annotations

from typing import Any

from latentreason.builtins.tasks.common import DATA_ROOT, prompts
from latentreason.components.example import Example
from latentreason.components.task import HubSource, TaskSpec


def _strategyqa_row(row: dict[str, Any], fallback_id: str) -> Example:
    """A ``ChilleD/StrategyQA`` row: a boolean answer and supporting facts."""
    answer = row["answer"]
    if isinstance(answer, str):
        answer = answer.strip().casefold() in ("yes", "true")
    facts = row.get("facts") or []
    rationale = " ".join(f.strip() for f in facts) if isinstance(facts, list) else str(facts).strip()
    return Example(
        id=str(row.get("qid") or fallback_id),
        question=row["question"].strip(),
        answer="Yes" if answer else "No",
        rationale=rationale or None,
    )


STRATEGYQA = TaskSpec(
    name="strategyqa",
    description="StrategyQA yes/no questions that need implicit multi-step reasoning.",
    answer_type="yesno",
    evaluator="yesno",
    **prompts(
        "Answer the yes/no question; it needs several steps of reasoning with facts about the world.", "Yes or No"
    ),
    eval_split="test",
    train_split="train",
    data_dir=DATA_ROOT / "strategyqa",
    hub=HubSource("ChilleD/StrategyQA", None, {"train": "train", "test": "test"}, _strategyqa_row),
    license="Apache-2.0 (BIG-bench); StrategyQA itself is MIT",
    source="Geva et al. 2021, via BIG-bench task strategyqa",
)
