"""Evaluation: running a method on examples (:mod:`.runner`), results folders (:mod:`.results`),
comparisons (:mod:`.comparison`, :mod:`.experiment`), their statistics and tables
(:mod:`.stats`, :mod:`.tables`), reports (:mod:`.report`) and peak memory (:mod:`.memory`)."""

# The names latentreason 0.1's ``latentreason.evaluation`` module had.
from latentreason.evaluation.runner import default_output, evaluate, method_name

__all__ = ["default_output", "evaluate", "method_name"]
