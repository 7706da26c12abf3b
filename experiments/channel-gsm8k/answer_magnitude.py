"""Do the oracle's thoughts move the LLM's answer towards their own problem's answer, even when it is wrong?

Reads two finished cells of experiments/channel-gsm8k.yaml: a control with its own thoughts and the same
control fed the next problem's thoughts (same weights, same problems). For each problem it asks whether the
answer written is within a factor of sqrt(10) of the gold answer of the problem it reads, and of the problem
whose thoughts it was given, and pairs the two cells with McNemar's test. Exact accuracy cannot see a
channel that carries the size of the answer but not its digits; this can. Run from the repository root:

    python experiments/channel-gsm8k/answer_magnitude.py [METHOD ...]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from latentreason.evaluation.stats import mcnemar_exact

ROOT = Path(__file__).parent
DEFAULT = ("oracle-answer-only-turn-note", "oracle-answer-only-text16-turn-note")


def _number(text: str | None) -> float | None:
    try:
        return float(str(text).replace(",", ""))
    except ValueError:
        return None


def _near(written: float | None, gold: float | None) -> bool:
    """Both positive and within a factor of sqrt(10) of each other."""
    return (
        written is not None and gold is not None and written > 0 and gold > 0 and abs(math.log10(written / gold)) < 0.5
    )


def _cell(label: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / f"gsm8k-{label}-seed0" / "samples.jsonl").read_text().splitlines()]


def main(methods: tuple[str, ...]) -> None:
    """Print, per method, how often its answer is near its own problem's gold and near the next problem's."""
    for method in methods:
        own, swapped = _cell(method), _cell(f"{method}-next-thoughts")
        assert [r["id"] for r in own] == [r["id"] for r in swapped], "the two cells must hold the same problems"
        gold = [_number(r["gold"]) for r in own]
        following = gold[1:] + gold[:1]  # thoughts_from: next gives problem i the thoughts of problem i+1
        near_own = [_near(_number(r["flexible"]), g) for r, g in zip(own, gold)]
        near_own_swapped = [_near(_number(r["flexible"]), g) for r, g in zip(swapped, gold)]
        near_next_swapped = [_near(_number(r["flexible"]), g) for r, g in zip(swapped, following)]
        near_next_own = [_near(_number(r["flexible"]), g) for r, g in zip(own, following)]
        n = len(own)
        b = sum(a and not s for a, s in zip(near_own, near_own_swapped))
        c = sum(s and not a for a, s in zip(near_own, near_own_swapped))
        print(
            f"{method} (n={n}): near its own problem's gold {sum(near_own) / n:.2f} with its own thoughts, "
            f"{sum(near_own_swapped) / n:.2f} with the next problem's (McNemar p = {mcnemar_exact(b, c):.3g}, {b}/{c}); "
            f"near the next problem's gold {sum(near_next_own) / n:.2f} -> {sum(near_next_swapped) / n:.2f}"
        )


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or DEFAULT)
