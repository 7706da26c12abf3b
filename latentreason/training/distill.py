"""Self-distillation: the LLM's own correct chains on training problems, as training targets.

Two evaluation runs through the configured method and engine (the ordinary
run path, :func:`~latentreason.evaluation.runner.evaluate`, each into a
results folder beside the output file, so an interrupted distillation
resumes where it stopped):

1. ``greedy``: one greedy chain per problem;
2. ``sampled``: for the problems whose greedy chain is wrong, ``tries``
   sampled chains each (temperature / top-p), drawn in one pass.

A problem keeps its greedy chain if that is correct, else the first correct
of its sampled chains in draw order (the chain that sampling one at a time
until one is correct would keep, without starting the engine once per try),
else nothing. Correct means the evaluator's strict answer (the format the
instruction asks for) equals the gold answer, so a kept chain also teaches
the format. The kept chains are written as a targets file
(:mod:`latentreason.training.targets`) with their provenance.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from latentreason import distributed
from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.prepare import Log, Prepared, build, prepare, to_stderr
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.components.example import Example
from latentreason.components.task import TaskSpec
from latentreason.config import RunConfig
from latentreason.errors import LatentReasonError
from latentreason.evaluation.results import ResultsFolder
from latentreason.evaluation.runner import evaluate
from latentreason.models.runtime import Runtime
from latentreason.training.targets import llm_identity, prompt_identity, write_targets


@dataclass(frozen=True)
class Sampling:
    """How chains are sampled for the problems the greedy chain gets wrong.

    Attributes:
        tries: chains drawn per such problem (0: greedy only).
        temperature: sampling temperature.
        top_p: nucleus sampling's probability mass.
    """

    tries: int = 8
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.tries < 0 or self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise LatentReasonError(
                f"Sampling needs tries >= 0, temperature > 0 and 0 < top_p <= 1 (got tries={self.tries}, "
                f"temperature={self.temperature}, top_p={self.top_p})."
            )


@dataclass(frozen=True)
class DistillReport:
    """What a distillation wrote.

    Attributes:
        path: the targets file.
        passes: the folder holding the two passes' results folders.
        provenance: the file's header (its ``counts``: problems, greedy_correct, sampled_correct, kept).
    """

    path: Path
    passes: Path
    provenance: dict[str, Any]


def passes_folder(out: str | Path) -> Path:
    """Where the passes of the distillation into ``out`` keep their results folders: ``<out>.passes/``."""
    out = Path(out)
    return out.with_name(out.name + ".passes")


def pass_config(config: RunConfig, sampling: Sampling | None) -> RunConfig:
    """The config of the greedy pass (``sampling`` None) or of the sampled pass."""
    generation: dict[str, Any] = {"do_sample": False, "samples": 1}
    if sampling is not None:
        generation = {
            "do_sample": True,
            "samples": sampling.tries,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
    label = "distill-" + ("greedy" if sampling is None else "sampled")
    return config.model_copy(
        update={"label": label, "generation": config.generation.model_copy(update=generation)}, deep=True
    )


def _first_correct(pipeline: Pipeline, example: Example, chains: list[str]) -> int | None:
    """The index of the first chain whose strict answer is correct, or None (scored now, not read from the records)."""
    return next((n for n, text in enumerate(chains) if pipeline.evaluator.score(text, example).strict_correct), None)


def _chains(pipeline: Pipeline, examples: list[Example], folder: Path, progress: bool) -> dict[str, list[str]]:
    """Evaluate ``examples`` into ``folder`` (resuming); each example's chains."""
    evaluate(pipeline, examples, folder, progress=progress)
    wanted = {ex.id for ex in examples}
    records = [r for r in ResultsFolder(folder, pipeline.config, prepare=False).done() if r["id"] in wanted]
    return {r["id"]: r.get("samples", [r["generation"]]) for r in records}


def distill(
    config: RunConfig,
    out: str | Path,
    sampling: Sampling,
    *,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    progress: bool = True,
    log: Log | None = to_stderr,
) -> DistillReport:
    """Generate, check and keep the LLM's own correct chains on training problems (see the module docstring).

    Args:
        config: the run config (models, method, prompt, engine, seed); ``data``
            selects the problems (its split: see :func:`distill_split`).
        out: the targets file to write.
        sampling: the sampled pass's settings.
        registry: plugins (default: installed ones).
        runtime: preloaded models (default: loaded from the config); both passes share them.
        progress: show a progress bar per pass.
        log: receives the notes on the run (the dtype, ...); None: none.

    Returns:
        Where the file is, and its provenance.
    """
    registry = registry or Registry()
    split = distill_split(resolve(config, registry).task, config.data.split)
    config = config.model_copy(update={"data": config.data.model_copy(update={"split": split})})
    # the problems and checkpoints are checked before any model loads
    prepared: Prepared[list[Example]] = prepare(pass_config(config, None), registry, runtime, log=log)
    greedy, examples = prepared.pipeline, prepared.examples
    passes = passes_folder(out)
    written = _chains(greedy, examples, passes / "greedy", progress)
    chains: dict[str, tuple[str, int, str]] = {}  # id -> (from, try, chain)
    for ex in examples:
        if _first_correct(greedy, ex, written[ex.id]) == 0:
            chains[ex.id] = ("greedy", 0, written[ex.id][0])
    greedy_correct = len(chains)
    wrong = [ex for ex in examples if ex.id not in chains]
    if sampling.tries and wrong:
        sampled = build(resolve(pass_config(config, sampling), registry), registry, greedy.runtime, log=None)
        written = _chains(sampled, wrong, passes / "sampled", progress)
        for ex in wrong:
            found = _first_correct(sampled, ex, written[ex.id])
            if found is not None:
                chains[ex.id] = ("sample", found + 1, written[ex.id][found])
    rows = [
        {"id": ex.id, "question": ex.question, "answer": ex.answer, "target": chains[ex.id][2]}
        | {"from": chains[ex.id][0], "try": chains[ex.id][1]}
        for ex in examples
        if ex.id in chains
    ]
    provenance = {
        **llm_identity(config.models.llm),
        **prompt_identity(config, greedy.task),
        "producer": config.producer.model_dump(mode="json"),
        "checkpoint": config.checkpoints(),
        "data": config.data.model_dump(mode="json"),
        "engine": config.generation.engine,
        "dtype": greedy.config.models.dtype,  # 'auto' resolved
        "generation": {
            "max_new_tokens": config.generation.max_new_tokens,
            "stop_at_answer": config.generation.stop_at_answer,
            "greedy": "one chain per problem",
            "sampled": {"tries": sampling.tries, "temperature": sampling.temperature, "top_p": sampling.top_p},
            "kept": "the greedy chain if its strict answer is correct, else the first correct sampled chain",
        },
        "seed": config.seed,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "latentreason": importlib.metadata.version("latentreason"),
        "counts": {
            "problems": len(examples),
            "greedy_correct": greedy_correct,
            "sampled_correct": len(chains) - greedy_correct,
            "kept": len(chains),
            "sampled_chains": sampling.tries * len(wrong),
        },
    }
    if distributed.current().is_main:  # under torchrun every rank has the same rows
        write_targets(out, provenance, rows)
    distributed.barrier()
    return DistillReport(Path(out), passes, provenance)


def distill_split(task: TaskSpec, split: str | None) -> str:
    """The split to distill from: ``split``, else the task's training split.

    Raises:
        LatentReasonError: no split (the task has no training split), or the
            evaluation split (its chains would train on test problems).
    """
    split = split or task.train_split
    if split is None:
        raise LatentReasonError(f"Task {task.name!r} has no training split to distill from; name one with data.split.")
    if split == task.eval_split:
        raise LatentReasonError(
            f"{split!r} is {task.name}'s evaluation split: self-distilled targets are training data, made from "
            "training problems only (e.g. --split train)."
        )
    return split
