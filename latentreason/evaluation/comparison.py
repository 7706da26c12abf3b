"""Several methods on several tasks and seeds in one call, with one table.

A method is a label and a :class:`~latentreason.config.RunConfig`: either a
producer name or ``producer+decoder`` (e.g. ``softcot+compress``) built on
one base config (``latentreason run --producer a,b``), or any named config
from an experiment file (``latentreason compare FILE``, see
:mod:`latentreason.evaluation.experiment`). Each (task, method, seed) cell is an ordinary
results folder ``<output>/<task>-<method>-seed<seed>`` (resumable like any
run); each method's models are loaded once. The comparison is written as
``comparison.md`` and ``comparison.csv`` in ``<output>``, with paired
differences against a reference method (see :mod:`latentreason.evaluation.tables`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from latentreason import distributed
from latentreason.assembly.prepare import Log, build, evaluation_data, to_stderr
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import Plan, resolve
from latentreason.components.example import Example
from latentreason.config import Component, RunConfig
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.evaluation.results import ResultsFolder
from latentreason.evaluation.runner import evaluate, method_name
from latentreason.evaluation.tables import Cell, csv_table, markdown_table, read_cell, reference_names
from latentreason.models.runtime import Runtime
from latentreason.storage import read_meta, unfinished_training


@dataclass(frozen=True)
class Method:
    """One method of a comparison: its label and its config (task and seed are set per cell).

    Attributes:
        label: its name in tables and results folders.
        config: its run config.
        seeds: its own seeds (e.g. the training seeds of a trained method), or None for the comparison's.
    """

    label: str
    config: RunConfig
    seeds: tuple[int, ...] | None = None

    def seeds_in(self, seeds: Sequence[int]) -> list[int]:
        """The seeds this method runs with in a comparison over ``seeds``."""
        return list(self.seeds) if self.seeds is not None else list(seeds)

    def checkpoints_for(self, seed: int) -> list[str]:
        """Its checkpoint files for a seed (``{seed}`` in a path is the seed: one trained model per seed)."""
        return [path.replace("{seed}", str(seed)) for path in self.config.checkpoints()]

    def cell_config(self, task: str, seed: int) -> RunConfig:
        """The config of its cell (task, seed): label, task and seed set, ``{seed}`` in checkpoint paths filled in."""
        checkpoints = self.checkpoints_for(seed)
        return self.config.model_copy(
            update={
                "label": self.label,
                "data": self.config.data.model_copy(update={"task": task}),
                "seed": seed,
                "checkpoint": checkpoints[0] if isinstance(self.config.checkpoint, str) else checkpoints or None,
            },
            deep=True,
        )


def methods_from_names(
    base: RunConfig, names: list[str], checkpoints: dict[str, str], registry: Registry
) -> list[Method]:
    """Methods named ``producer`` or ``producer+decoder``, built on ``base`` (the ``run --producer a,b`` form).

    Producer options in ``base`` apply to every producer that has them; an
    option that none of the producers has is an error. Decoder options in
    ``base`` apply to every method with a decoder. A checkpoint under the key
    ``"*"`` applies to every producer with trainable parts.

    Raises:
        ConfigError: unknown producers and options nobody takes, all at once.
    """
    problems: list[str] = []
    accepted: dict[str, set[str]] = {}
    for name in dict.fromkeys(n.partition("+")[0] for n in names):
        try:
            accepted[name] = set(registry.get("producer", name).Options.model_fields)
        except LatentReasonError as exc:  # an unknown name: report it with the others
            problems.append(f"producer: {exc}")
    known = set().union(*accepted.values()) if accepted else set()
    problems += [
        f"producer.options.{k}: no selected producer has this option" for k in base.producer.options if k not in known
    ]
    if problems:
        raise ConfigError(sorted(set(problems)))
    methods = []
    for name in names:
        producer, _, decoder = name.partition("+")
        own = {k: v for k, v in base.producer.options.items() if k in accepted[producer]}
        decoder_options = base.decoder.options if base.decoder else {}
        config = base.model_copy(
            update={
                "label": None,
                "producer": Component(name=producer, options=own),
                "projector": base.projector if base.producer.name == producer else None,
                "decoder": Component(name=decoder, options=decoder_options) if decoder else None,
                "checkpoint": checkpoints.get(producer, checkpoints.get("*")),
            },
            deep=True,
        )
        methods.append(Method(name, config))
    return methods


def checkpoint_problems(methods: list[Method], seeds: Sequence[int]) -> list[str]:
    """One problem per checkpoint file a method names (for any of its seeds) that is missing or not final.

    A comparison evaluates finished trainings only: a save from the middle of
    a training (``train.save_every``) would give a method, or a control
    sharing its weights, a different model from the one its final cells get.
    """
    problems: dict[str, None] = {}
    for method in methods:
        for seed in method.seeds_in(seeds):
            for path in method.checkpoints_for(seed):
                if not Path(path).is_file():
                    problems[f"{method.label}: checkpoint {path!r} does not exist"] = None
                    continue
                try:
                    unfinished = unfinished_training(read_meta(path))
                except LatentReasonError as exc:
                    problems[f"{method.label}: {exc}"] = None
                    continue
                if unfinished:
                    problems[
                        f"{method.label}: checkpoint {path!r} is a save from the middle of its training ({unfinished}); "
                        "finish the training (run its `latentreason train` command again) before comparing, or "
                        "evaluate it on purpose with `latentreason run --checkpoint`"
                    ] = None
    return list(problems)


def plan_comparison(methods: list[Method], tasks: list[str], seeds: list[int], registry: Registry) -> list[Plan]:
    """Resolve every (task, method, seed) cell up front, so any mistake is reported before hours of work.

    Raises:
        ConfigError: every problem of every cell at once.
    """
    problems: list[str] = []
    labels = [m.label for m in methods]
    problems += [f"method {label!r} is listed twice" for label in sorted({x for x in labels if labels.count(x) > 1})]
    problems += checkpoint_problems(methods, seeds)
    plans = []
    for task in tasks:
        for method in methods:
            for seed in method.seeds_in(seeds):
                try:
                    plans.append(resolve(method.cell_config(task, seed), registry))
                except ConfigError as exc:
                    problems += [f"{task}/{method.label}: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return plans


def compare(
    methods: list[Method],
    tasks: list[str],
    seeds: list[int],
    output: str | Path,
    *,
    reference: str | Sequence[str] | None = None,
    table: dict[str, list[int]] | None = None,
    progress: bool = True,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    log: Log | None = to_stderr,
) -> list[Cell]:
    """Run every (task, method, seed) cell and write the comparison tables.

    A cell whose results folder already holds every example of its plan (see
    :meth:`~latentreason.evaluation.results.ResultsFolder.holds`, the check a
    resumed run makes) is read back as it is: a comparison of finished cells
    loads no model. Under torchrun every cell is sharded over the ranks like a
    single run.
    The tables cover the methods named in ``table``: those run here, and the
    finished cells of the others found in ``output`` (an experiment run a few
    methods at a time keeps one table of all of them).

    Args:
        methods: the methods (see :func:`methods_from_names` and
            :func:`latentreason.evaluation.experiment.load_experiment`).
        tasks: task names.
        seeds: seeds (each cell runs once per seed; a method with its own ``seeds`` runs those).
        output: folder for the cells' results and the comparison.
        reference: the method the paired differences are taken against, or several
            (default: the first of ``table``).
        table: the methods the tables cover, in order: label -> seeds (default: ``methods``).
        progress: show progress bars.
        registry: plugins (default: installed ones).
        runtime: preloaded models for every cell (default: each method's
            ``models``, loaded once; cells with the same models run one after
            another).
        log: receives the notes on each method's run (each note once; see
            :func:`latentreason.assembly.prepare.build`); None: none.

    Returns:
        One cell (summary and per-example records) per (task, method, seed), in that order.

    Raises:
        ConfigError: every problem of every cell, before anything runs.
    """
    registry = registry or Registry()
    table = table or {m.label: m.seeds_in(seeds) for m in methods}
    labels = list(table)
    problems = [f"table: method {m.label!r} is run but not in the table" for m in methods if m.label not in labels]
    problems += [
        f"reference: {name!r} is not one of the methods ({', '.join(labels)})"
        for name in reference_names(reference)
        if name not in labels
    ]
    if problems:
        raise ConfigError(problems)
    references = reference_names(reference) or labels[:1]
    plans = plan_comparison(methods, tasks, seeds, registry)
    tasks = list(dict.fromkeys(plan.task.name for plan in plans))  # a task file's name, not its path
    examples = _checked_examples(plans)
    output = Path(output)
    done: dict[int, Cell] = {}
    said: set[str] = set()

    def once(note: str) -> None:  # every cell of a method would say the same
        if log is not None and note not in said:
            said.add(note)
            log(note)

    loaded: Runtime | None = runtime
    for index in _by_models(plans):
        plan = plans[index]
        config = plan.config
        folder = cell_folder(output, plan.task.name, method_name(config), config.seed)
        if not ResultsFolder(folder, config, prepare=False).holds(config, [ex.id for ex in examples[index]]):
            if (
                runtime is None
                and loaded is not None
                and (loaded.models, loaded.adapter_config) != (config.models, config.adapter)
            ):
                loaded = None  # release the previous method's models before loading the next ones
            pipeline = build(plan, registry, loaded, log=once)
            loaded = pipeline.runtime
            evaluate(pipeline, examples[index], folder, progress=progress)
            del pipeline
            if distributed.current().is_main:  # an interrupted comparison keeps the table of the cells done so far
                write_comparison(output, finished_cells(output, tasks, table), references)
        done[index] = read_cell(folder)  # a finished cell is read back: no model loads for it
    if distributed.current().is_main:  # the whole table (a run that decoded nothing writes only this one)
        write_comparison(output, finished_cells(output, tasks, table), references)
    return [done[i] for i in range(len(plans))]


def cell_folder(output: Path, task: str, label: str, seed: int) -> Path:
    """The results folder of a comparison's cell: ``<output>/<task>-<label>-seed<seed>``."""
    return output / f"{task}-{label}-seed{seed}"


def finished_cells(output: Path, tasks: list[str], table: dict[str, list[int]]) -> list[Cell]:
    """The cells under ``output`` whose runs finished (a ``summary.json``), in (task, method, seed) order.

    Args:
        output: the comparison's folder.
        tasks: its tasks.
        table: its methods: label -> seeds.
    """
    folders = (cell_folder(output, t, label, seed) for t in tasks for label, seeds in table.items() for seed in seeds)
    return [read_cell(folder) for folder in folders if (folder / "summary.json").is_file()]


def _checked_examples(plans: list[Plan]) -> list[list[Example]]:
    """Every cell's examples, with every cell's data and checkpoint problems in one report, before any model loads."""
    problems, examples = [], []
    for plan in plans:
        try:
            examples.append(evaluation_data(plan))
        except ConfigError as exc:
            problems += [f"{plan.task.name}/{method_name(plan.config)}: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return examples


def _by_models(plans: list[Plan]) -> list[int]:
    """Cell indices, grouped so that cells with the same ``models`` run one after another (table order within)."""
    first: dict[str, int] = {}
    key = [first.setdefault(p.config.models.model_dump_json() + str(p.config.adapter), len(first)) for p in plans]
    return sorted(range(len(plans)), key=lambda i: key[i])


def write_comparison(output: Path, cells: list[Cell], reference: str | Sequence[str] | None = None) -> None:
    """Write ``comparison.md``, ``comparison.csv`` and ``comparison.json`` (which names the references)."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "comparison.md").write_text(markdown_table(cells, reference) + "\n")
    (output / "comparison.csv").write_text(csv_table(cells, reference))
    (output / "comparison.json").write_text(json.dumps({"reference": reference_names(reference)}, indent=1) + "\n")
