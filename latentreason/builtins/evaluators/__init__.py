"""The built-in evaluators, by registered name."""

from __future__ import annotations

from latentreason.builtins.evaluators.choice import ChoiceEvaluator
from latentreason.builtins.evaluators.number import NumberEvaluator
from latentreason.builtins.evaluators.yesno import YesNoEvaluator
from latentreason.components.evaluator import Evaluator

BUILTIN_EVALUATORS: dict[str, type[Evaluator]] = {
    "number": NumberEvaluator,
    "choice": ChoiceEvaluator,
    "yesno": YesNoEvaluator,
}
