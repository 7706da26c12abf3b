"""The built-in evaluators, by registered name."""

from __future__ import annotations

from latentreason.evaluator import Evaluator
from latentreason.evaluators.choice import ChoiceEvaluator
from latentreason.evaluators.number import NumberEvaluator
from latentreason.evaluators.yesno import YesNoEvaluator

BUILTIN_EVALUATORS: dict[str, type[Evaluator]] = {
    "number": NumberEvaluator,
    "choice": ChoiceEvaluator,
    "yesno": YesNoEvaluator,
}
