"""Experiment files: named methods, each any run config, compared in one command.

An experiment is a YAML file::

    base:                 # RunConfig fields every method shares
      data: {task: gsm8k, limit: 50}
      models: {dtype: bfloat16}
    tasks: [gsm8k]        # optional (default: base data.task)
    seeds: [0]            # optional (default: base seed)
    output: runs/compression   # optional results folder
    reference: cot        # optional: paired differences against this method, or a list (default: the first)
    methods:              # label: RunConfig fields on top of base
      cot: {producer: cot}
      compress-trained:
        producer: cot
        decoder: {name: compress, options: {pooling: attention}}
        checkpoint: runs/compress-attn/last.safetensors
      softcot:            # one trained projector per seed: {seed} in a checkpoint path
        producer: softcot
        seeds: [0, 1]     # optional: this method's own seeds (default: the file's)
        checkpoint: runs/softcot-s{seed}/last.safetensors

``producer``, ``decoder``, ``projector``, ``injector`` and ``evaluator`` may
be given as a bare name. ``latentreason compare FILE`` runs every (task,
method, seed) cell through :func:`latentreason.evaluation.comparison.compare`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import load_checked, resolve
from latentreason.config import Strict, format_validation_error, merge, read_yaml
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.evaluation.comparison import Method, checkpoint_problems
from latentreason.evaluation.tables import reference_names

COMPONENTS = ("producer", "projector", "injector", "evaluator", "decoder")


class ExperimentFile(Strict):
    """The top level of an experiment file (method configs are checked as run configs)."""

    base: dict[str, Any] = Field(default_factory=dict)
    tasks: list[str] | None = Field(None, min_length=1)
    seeds: list[int] | None = Field(None, min_length=1)
    output: str | None = None
    reference: str | list[str] | None = Field(
        None, description="the method paired differences are taken against, or several (default: the first)"
    )
    methods: dict[str, dict[str, Any] | None] = Field(min_length=1)


@dataclass
class Experiment:
    """A loaded experiment: its methods, tasks, seeds and results folder.

    Attributes:
        methods: one :class:`~latentreason.evaluation.comparison.Method` per label, in file order.
        tasks: task names.
        seeds: seeds.
        output: results folder.
        reference: the methods paired differences are taken against (empty: the first).
        table: every method of the file, in order, with its seeds: the table's rows (with
            ``only``, the methods not run this time appear with their finished cells).
    """

    methods: list[Method]
    tasks: list[str]
    seeds: list[int]
    output: str
    reference: list[str] = field(default_factory=list)
    table: dict[str, list[int]] = field(default_factory=dict)


def _named(tree: dict[str, Any]) -> dict[str, Any]:
    """Expand bare component names (``producer: cot``) to ``{name: cot}``."""
    return {k: {"name": v} if k in COMPONENTS and isinstance(v, str) else v for k, v in tree.items()}


def load_experiment(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    only: list[str] | None = None,
    registry: Registry | None = None,
    only_seeds: list[int] | None = None,
) -> Experiment:
    """Read an experiment file and check every method against the installed plugins.

    Args:
        path: the YAML file.
        overrides: applied to ``base`` (e.g. from ``--set``), before each method's own fields.
        only: run just these method labels.
        registry: plugins to check against (default: installed ones).
        only_seeds: run just the cells of these seeds (a method with none of them does not run;
            a study whose second training seed is not trained yet can run its first).

    Raises:
        LatentReasonError: unreadable YAML; or a ConfigError listing every
            problem of every method at once.
    """
    try:
        spec = ExperimentFile.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), source=str(path)) from None
    unknown = [label for label in only or [] if label not in spec.methods]
    if unknown:
        raise LatentReasonError(
            f"Unknown method(s) {', '.join(map(repr, unknown))} in {str(path)!r}; it defines: {', '.join(spec.methods)}."
        )
    base = merge(_named(spec.base), overrides or {})
    registry = registry or Registry()
    problems: list[str] = []
    methods = []
    seeds = spec.seeds or [base.get("seed", 0)]
    table: dict[str, list[int]] = {}
    for label, fields in spec.methods.items():
        fields = dict(fields or {})
        own = fields.pop("seeds", None)
        valid = own is None or (
            isinstance(own, list) and own and all(isinstance(x, int) and not isinstance(x, bool) for x in own)
        )
        if not valid:
            problems.append(f"methods.{label}.seeds: a non-empty list of integers, got {own!r}")
        table[label] = list(own) if valid and own is not None else list(seeds)
        run_seeds = [s for s in table[label] if only_seeds is None or s in only_seeds]
        if (only and label not in only) or not run_seeds:
            continue
        if "/" in label or not label.strip():
            problems.append(f"methods.{label}: a label names a results folder; use letters, digits, '-', '+' or '_'")
            continue
        try:
            config = load_checked(None, merge(base, _named(fields)), registry)
            resolve(config, registry)
            methods.append(Method(label, config, tuple(run_seeds) if only_seeds or own is not None else None))
        except ConfigError as exc:
            problems += [f"methods.{label}: {p}" for p in exc.problems]
    offered = sorted({seed for label in only or table for seed in table[label]})
    problems += [
        f"--seeds: no method {'named' if only else 'of the file'} runs seed {seed} (seeds: {', '.join(map(str, offered))})"
        for seed in only_seeds or []
        if seed not in offered
    ]
    problems += [f"methods.{problem}" for problem in checkpoint_problems(methods, seeds)]
    reference = reference_names(spec.reference)
    problems += [
        f"reference: {name!r} is not one of the methods ({', '.join(spec.methods)})"
        for name in reference
        if name not in spec.methods
    ]
    if problems:
        raise ConfigError(problems, source=str(path))
    first = methods[0].config
    tasks = spec.tasks or [first.data.task]
    return Experiment(methods, tasks, seeds, spec.output or first.output_dir, reference, table)
