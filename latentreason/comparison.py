"""Several methods on several tasks and seeds in one call, with one table.

A method is a label and a :class:`~latentreason.config.RunConfig`: either a
producer name or ``producer+decoder`` (e.g. ``softcot+compress``) built on
one base config (``latentreason run --producer a,b``), or any named config
from an experiment file (``latentreason compare FILE``, see
:mod:`latentreason.experiment`). Each (task, method, seed) cell is an ordinary
results folder ``<output>/<task>-<method>-seed<seed>`` (resumable like any
run); the models are loaded once and shared. The comparison is written as
``comparison.md`` and ``comparison.csv`` in ``<output>``.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from latentreason import distributed
from latentreason.api import evaluation_examples
from latentreason.config import Component, RunConfig
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.evaluation import evaluate, method_name
from latentreason.pipeline import Pipeline
from latentreason.registry import Registry
from latentreason.resolve import Plan, resolve
from latentreason.results import Summary
from latentreason.runtime import Runtime


@dataclass
class Row:
    """One (task, producer) line of the comparison, over seeds."""

    task: str
    producer: str
    runs: list[Summary]

    def _stat(self, attr: str) -> tuple[float, float]:
        values = [getattr(r, attr) for r in self.runs]
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    def cells(self) -> dict[str, str]:
        """Formatted columns: accuracies (mean ± std over seeds, or a 95% CI for one seed) and costs."""
        out = {"task": self.task, "method": self.producer, "n": str(self.runs[0].n), "seeds": str(len(self.runs))}
        for kind in ("strict", "flexible"):
            mean, std = self._stat(f"{kind}_acc")
            if len(self.runs) > 1:
                out[f"acc {kind}"] = f"{mean:.3f} ± {std:.3f}"
            else:
                low, high = getattr(self.runs[0], f"{kind}_ci")
                out[f"acc {kind}"] = f"{mean:.3f} [{low:.2f}, {high:.2f}]"
        out["mean new tokens"] = f"{self._stat('mean_new_tokens')[0]:.1f}"
        out["examples/s"] = f"{self._stat('examples_per_s')[0]:.3f}"
        out["wall s"] = f"{statistics.fmean(r.n / r.examples_per_s if r.examples_per_s else 0.0 for r in self.runs):.0f}"
        out["peak mem GiB"] = f"{max(r.peak_memory_gib for r in self.runs):.2f}"
        out["peak KV tokens"] = f"{self._stat('mean_peak_kv')[0]:.0f}"
        out["dependency"] = f"{self._stat('mean_dependency')[0]:.0f}"
        return out


def rows(summaries: list[Summary]) -> list[Row]:
    """Group run summaries by (task, producer), keeping first-seen order."""
    grouped: dict[tuple[str, str], Row] = {}
    for s in summaries:
        grouped.setdefault((s.task, s.producer), Row(s.task, s.producer, [])).runs.append(s)
    return list(grouped.values())


def markdown_table(summaries: list[Summary]) -> str:
    """The comparison as a Markdown table."""
    lines = [r.cells() for r in rows(summaries)]
    head = list(lines[0])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(line[h] for h in head) + " |" for line in lines]
    return "\n".join(out)


def csv_table(summaries: list[Summary]) -> str:
    """The comparison as CSV, with raw numbers (one line per run)."""
    buffer = io.StringIO()
    fields = ["task", "producer", "seed", "n", "strict_acc", "strict_ci_low", "strict_ci_high", "flexible_acc",
              "flexible_ci_low", "flexible_ci_high", "mean_new_tokens", "examples_per_s", "tokens_per_s", "peak_memory_gib",
              "mean_peak_kv", "mean_dependency"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for s in summaries:
        writer.writerow({
            "task": s.task, "producer": s.producer, "seed": s.seed, "n": s.n,
            "strict_acc": s.strict_acc, "strict_ci_low": s.strict_ci[0], "strict_ci_high": s.strict_ci[1],
            "flexible_acc": s.flexible_acc, "flexible_ci_low": s.flexible_ci[0], "flexible_ci_high": s.flexible_ci[1],
            "mean_new_tokens": s.mean_new_tokens, "examples_per_s": s.examples_per_s,
            "tokens_per_s": s.tokens_per_s, "peak_memory_gib": s.peak_memory_gib,
            "mean_peak_kv": s.mean_peak_kv, "mean_dependency": s.mean_dependency,
        })
    return buffer.getvalue()


@dataclass(frozen=True)
class Method:
    """One method of a comparison: its label and its config (task and seed are set per cell)."""

    label: str
    config: RunConfig


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
    problems += [f"producer.options.{k}: no selected producer has this option" for k in base.producer.options if k not in known]
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


def missing_checkpoints(methods: list[Method]) -> list[str]:
    """One problem per checkpoint file a method names that does not exist."""
    return [f"{m.label}: checkpoint {path!r} does not exist" for m in methods for path in m.config.checkpoints() if not Path(path).is_file()]


def plan_comparison(methods: list[Method], tasks: list[str], seeds: list[int], registry: Registry) -> list[Plan]:
    """Resolve every (task, method, seed) cell up front, so any mistake is reported before hours of work.

    Raises:
        ConfigError: every problem of every cell at once.
    """
    problems: list[str] = []
    labels = [m.label for m in methods]
    problems += [f"method {label!r} is listed twice" for label in sorted({x for x in labels if labels.count(x) > 1})]
    problems += missing_checkpoints(methods)
    plans = []
    for task in tasks:
        for method in methods:
            for seed in seeds:
                config = method.config.model_copy(
                    update={"label": method.label, "data": method.config.data.model_copy(update={"task": task}), "seed": seed},
                    deep=True,
                )
                try:
                    plans.append(resolve(config, registry))
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
    progress: bool = True,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
) -> list[Summary]:
    """Run every (task, method, seed) cell and write the comparison tables.

    Under torchrun every cell is sharded over the ranks like a single run.

    Args:
        methods: the methods (see :func:`methods_from_names` and
            :func:`latentreason.experiment.load_experiment`).
        tasks: task names.
        seeds: seeds (each cell runs once per seed).
        output: folder for the cells' results and the comparison.
        progress: show progress bars.
        registry: plugins (default: installed ones).
        runtime: preloaded models for every cell (default: each method's
            ``models``, loaded once; cells with the same models run one after
            another).

    Returns:
        One summary per cell, in task, method, seed order.
    """
    registry = registry or (runtime.registry if runtime else Registry())
    plans = plan_comparison(methods, tasks, seeds, registry)
    distributed.setup(runtime.device if runtime else methods[0].config.models.device)  # each rank loads onto its own device
    output = Path(output)
    done: dict[int, Summary] = {}
    loaded: Runtime | None = runtime
    for index in _by_models(plans):
        plan = plans[index]
        config = plan.config
        if runtime is None and (loaded is None or loaded.models != config.models):
            loaded = None  # release the previous method's models before loading the next ones
            loaded = Runtime(config.models, registry)
        torch.manual_seed(config.seed)
        pipeline = Pipeline(plan, loaded)
        examples = evaluation_examples(pipeline)
        folder = output / f"{plan.task.name}-{method_name(config)}-seed{config.seed}"
        done[index] = evaluate(pipeline, examples, folder, progress=progress)
        if distributed.current().is_main:
            write_comparison(output, [done[i] for i in sorted(done)])
    return [done[i] for i in range(len(plans))]


def _by_models(plans: list[Plan]) -> list[int]:
    """Cell indices, grouped so that cells with the same ``models`` run one after another (table order within)."""
    first: dict[str, int] = {}
    key = [first.setdefault(p.config.models.model_dump_json(), len(first)) for p in plans]
    return sorted(range(len(plans)), key=lambda i: key[i])


def write_comparison(output: Path, summaries: list[Summary]) -> None:
    """Write ``comparison.md`` and ``comparison.csv``."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "comparison.md").write_text(markdown_table(summaries) + "\n")
    (output / "comparison.csv").write_text(csv_table(summaries))
