"""Dataset loaders for the lm-eval task files next to this module (``custom_dataset: !function utils.<loader>``).

lm-eval imports this file by its path and calls a loader with the task's
metadata (which holds the run's model arguments) as keyword arguments; the
loaders ignore them. Rows keep the JSONL schema of the shipped data (``id``,
``question``, ``answer``, ``rationale``, ``choices``), plus the fields the
task files' prompts and filters read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import datasets

from latentreason.builtins.tasks.common import DATA_ROOT

#: The option letter before an option's text in the shipped rows: ``"A) 12"``.
_LETTER_PREFIX = re.compile(r"^\s*\(?[A-Za-z]\)\s*")


def _rows(task: str, split: str) -> list[dict[str, Any]]:
    """The rows of ``latentreason/builtins/data/<task>/<split>.jsonl``, in file order."""
    lines = (
        (DATA_ROOT / task / f"{split}.jsonl").read_text(encoding="utf-8").split("\n")
    )  # not splitlines(): U+2028 may occur in a row
    return [json.loads(line) for line in lines if line.strip()]


def _dataset(
    task: str, splits: tuple[str, ...], extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> datasets.DatasetDict:
    """The splits of a shipped task as a ``DatasetDict``, each row optionally extended by ``extra(row)``."""
    out = {}
    for split in splits:
        rows = _rows(task, split)
        if extra is not None:
            rows = [row | extra(row) for row in rows]
        out[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(out)


def gsm8k(**metadata: Any) -> datasets.DatasetDict:
    """GSM8K (test, and the shipped first 2000 train problems): ``answer`` is the final number alone."""
    return _dataset("gsm8k", ("test", "train"))


def _options(row: dict[str, Any]) -> dict[str, Any]:
    """BIG-Bench-Hard's multiple-choice layout: ``input`` lists ``(A) text`` lines; ``choices`` holds the texts."""
    texts = [_LETTER_PREFIX.sub("", choice, count=1) for choice in row["choices"]]
    lines = [f"({chr(ord('A') + i)}) {text}" for i, text in enumerate(texts)]
    return {"input": row["question"] + "\nOptions:\n" + "\n".join(lines), "choices": texts}


def aqua(**metadata: Any) -> datasets.DatasetDict:
    """AQuA-RAT (test and validation): ``answer`` is the option letter."""
    return _dataset("aqua", ("test", "validation"), _options)


def strategyqa(**metadata: Any) -> datasets.DatasetDict:
    """StrategyQA (test and train): ``answer`` is ``Yes`` or ``No``."""
    return _dataset("strategyqa", ("test", "train"))
