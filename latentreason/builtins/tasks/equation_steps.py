"""GSM8K with equation-style step rationales: one step per calculator annotation (``gsm8k-steps``).

Coconut and CODI train on GSM8k-Aug, whose rationales are bare equations,
one per reasoning step (``<<48/2=24>>``). That set is not reachable offline;
GSM8K's own training rationales carry the same equations as calculator
annotations inside their prose, so each rationale is converted to the
equations it annotates, in order, one per line::

    Natalia sold 48/2 = <<48/2=24>>24 clips in May.          48/2=24
    Natalia sold 48+24 = <<48+24=72>>72 clips altogether.    48+24=72

The task reads GSM8K's data exactly as ``gsm8k`` does (the shipped copy,
``$LATENTREASON_DATA_DIR/gsm8k``, an explicit source or the hub) and
converts each example's ``rationale`` as it loads; questions, answers, ids,
prompts and the evaluator are GSM8K's, so a method trained here is evaluated
on ``gsm8k`` unchanged. A rationale without annotations (28 of the 2000
shipped training problems) becomes no rationale: its target is the final
answer alone. The training target (:meth:`TaskSpec.target_text`) is the
steps, then ``The final answer is \\boxed{X}.``; methods that replace steps
with latent thoughts split it at its lines (:func:`target_steps`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from latentreason.components.example import Example
from latentreason.components.task import TaskSpec

_ANNOTATION = re.compile(r"<<([^<>]*)>>")


def equation_steps(rationale: str | None) -> list[str]:
    """The equations of a GSM8K rationale's calculator annotations, in order (``"48/2=24"``).

    Args:
        rationale: a worked solution with ``<<expression=result>>`` annotations, or None.

    Returns:
        One equation per annotation, whitespace removed; empty without annotations.
    """
    return [re.sub(r"\s+", "", found) for found in _ANNOTATION.findall(rationale or "")]


def target_steps(target: str) -> tuple[list[str], str]:
    """A step-rationale target split into its steps and its final line.

    Args:
        target: ``"<step>\\n...\\n<final line>"`` as :meth:`TaskSpec.target_text` writes it.

    Returns:
        The steps (possibly none) and the final line.
    """
    *steps, final = target.split("\n")
    return steps, final


@dataclass(frozen=True)
class EquationStepsTask(TaskSpec):
    """A task whose rationales are another task's, converted to equation steps as they load.

    Attributes:
        base: the task whose data is read (questions, answers and ids unchanged).
    """

    base: TaskSpec | None = None

    def _base(self) -> TaskSpec:
        if self.base is None:
            raise TypeError("EquationStepsTask needs a base task")
        return self.base

    def splits(self) -> list[str]:
        """The base task's splits."""
        return self._base().splits()

    def load(
        self,
        split: str | None = None,
        source: str | os.PathLike[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Example]:
        """The base task's examples (see :meth:`TaskSpec.load`), each rationale as equation steps, one per line."""
        examples = self._base().load(split or self.eval_split, source, limit, offset)
        return [replace(ex, rationale="\n".join(equation_steps(ex.rationale)) or None) for ex in examples]


def equation_steps_task(base: TaskSpec) -> EquationStepsTask:
    """``<base>-steps``: ``base`` with equation-step rationales (its prompts, splits and evaluator)."""
    fields = {name: getattr(base, name) for name in TaskSpec.__dataclass_fields__}
    fields |= {
        "name": f"{base.name}-steps",
        "description": f"{base.description} Rationales as equation steps, one per calculator annotation.",
    }
    return EquationStepsTask(**fields, base=base)
