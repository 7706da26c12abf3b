"""Module paths of latentreason 0.1 that still import, with a ``DeprecationWarning``, until 0.3.

0.2 arranged the modules in subpackages that follow the data path (see
``docs/architecture.md``). A plugin or script that imports an 0.1 path gets the
module at its new place; plugin authors should import from
:mod:`latentreason.plugin` instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "latentreason.answers": "latentreason.builtins.answers",
    "latentreason.batching": "latentreason.components.batching",
    "latentreason.builtin": "latentreason.builtins.plugin",
    "latentreason.checkpoint": "latentreason.storage",
    "latentreason.comparison": "latentreason.evaluation.comparison",
    "latentreason.evaluator": "latentreason.components.evaluator",
    "latentreason.evaluators": "latentreason.builtins.evaluators",
    "latentreason.experiment": "latentreason.evaluation.experiment",
    "latentreason.generation": "latentreason.decoding.generate",
    "latentreason.hookspecs": "latentreason.hooks.specs",
    "latentreason.injector": "latentreason.components.injector",
    "latentreason.memory": "latentreason.evaluation.memory",
    "latentreason.pipeline": "latentreason.engine.pipeline",
    "latentreason.placeholder": "latentreason.builtins.placeholder",
    "latentreason.producer": "latentreason.components.producer",
    "latentreason.projector": "latentreason.components.projector",
    "latentreason.prompting": "latentreason.components.prompting",
    "latentreason.registry": "latentreason.hooks.registry",
    "latentreason.report": "latentreason.evaluation.report",
    "latentreason.resolve": "latentreason.hooks.resolve",
    "latentreason.results": "latentreason.evaluation.results",
    "latentreason.runtime": "latentreason.models.runtime",
    "latentreason.segments": "latentreason.decoding.segments",
    "latentreason.task": "latentreason.components.task",
    "latentreason.tasks": "latentreason.builtins.tasks",
    "latentreason.trigger": "latentreason.decoding.trigger",
    "latentreason.trigger_training": "latentreason.training.trigger",
    "latentreason.voting": "latentreason.engine.voting",
}
"""0.1 module path -> its 0.2 place. ``latentreason.models``, ``.decoding``,
``.training`` and ``.evaluation`` are packages now and re-export their 0.1 names."""


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a moved module under its old name (the same module object)."""

    def find_spec(self, name, path, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} moved to {MOVED[spec.name]} in latentreason 0.2; the old path goes in 0.3 "
            "(plugins: import from latentreason.plugin).",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module) -> None:
        """Nothing to run: the module is already imported."""


def install() -> None:
    """Let the 0.1 module paths import (once per process)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
