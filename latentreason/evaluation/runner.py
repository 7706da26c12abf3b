"""Evaluate a pipeline on a task, with progress, resume and a summary.

Under torchrun the examples still to do are sharded over the ranks (rank r
answers examples r, r+W, ...); each rank appends its records to its own
``samples.rank<r>.jsonl``, and rank 0 merges them into ``samples.jsonl`` in
example order and writes the summary. Greedy decoding gives the same
per-example results with any number of ranks at ``generation.batch_size=1``
(larger batches compute in other shapes, which can flip near-tied tokens).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from latentreason import distributed
from latentreason.assembly.pipeline import Pipeline
from latentreason.components.example import Example
from latentreason.config import RunConfig
from latentreason.evaluation.memory import PeakMemory
from latentreason.evaluation.results import ResultsFolder, Summary, prediction_record, summarize
from latentreason.models.runtime import machine_label


def method_name(config: RunConfig) -> str:
    """How a method is named in summaries and tables: its ``label``, else ``producer`` or ``producer+decoder``."""
    return config.label or config.producer.name + (f"+{config.decoder.name}" if config.decoder else "")


def task_label(pipeline: Pipeline) -> str:
    """The task's name in results: ``gsm8k``, or ``gsm8k@f.jsonl`` when the run reads another data source."""
    source = pipeline.config.data.source
    return pipeline.task.name if source is None else f"{pipeline.task.name}@{Path(str(source)).name}"


def default_output(pipeline: Pipeline) -> Path:
    """``<output_dir>/<task>-<producer>-<split>`` for a run without an explicit folder (task: :func:`task_label`)."""
    config = pipeline.config
    split = config.data.split or pipeline.task.eval_split
    return Path(config.output_dir) / f"{task_label(pipeline)}-{config.producer.name}-{split}"


def evaluate(
    pipeline: Pipeline,
    examples: list[Example],
    output: str | Path | None = None,
    *,
    progress: bool = True,
) -> Summary:
    """Answer ``examples`` (see :meth:`Pipeline.stream`), appending each result to the results folder as it is done.

    Examples already in the folder (from an interrupted run with the same
    settings, with any number of ranks) are not recomputed.

    Args:
        pipeline: the method to evaluate.
        examples: what to evaluate on.
        output: results folder (default: :func:`default_output`).
        progress: show a progress bar (on rank 0, for its own shard).

    Returns:
        The summary over ``examples``, also written to the folder; every rank
        returns the same one.

    Raises:
        LatentReasonError: the folder holds results of other settings, or an
            example has no result after all ranks finished.
    """
    world = distributed.current()  # the process group prepare() joined
    config = pipeline.config
    path = Path(output or default_output(pipeline))
    ids = [ex.id for ex in examples]

    def finished_ids() -> list[str]:
        return ResultsFolder(path, config, weights=pipeline.checkpoints).finished(ids)

    finished = set(distributed.on_main(finished_ids))  # rank 0 checks the folder before any rank writes to it
    folder = ResultsFolder(path, config, prepare=False)
    todo = [ex for ex in examples if ex.id not in finished]
    mine = world.shard(todo)
    shard = world.rank if world.size > 1 else None
    skipped = len(examples) - len(todo) if world.size == 1 else 0
    machine = machine_label(pipeline.runtime.device)
    desc = f"{task_label(pipeline)}/{method_name(config)}" + (f" (rank 0 of {world.size})" if world.size > 1 else "")
    with (
        PeakMemory(pipeline.runtime.device) as memory,
        tqdm(
            total=skipped + len(mine), initial=skipped, desc=desc, unit="ex", disable=not (progress and world.is_main)
        ) as bar,
    ):
        for prediction in pipeline.stream(mine):
            folder.append([prediction_record(prediction, machine)], shard)
            bar.update(1)
    peak = max(distributed.all_gather_json(memory.peak_gib))  # also waits until every shard is written

    def finish() -> dict:
        records = folder.merge(ids)
        # a resumed run's peak is the highest of its sittings that answered examples; a sitting with
        # nothing left to do keeps the stored one, so reading a finished cell back rewrites nothing
        stored = folder.stored_peak_memory()
        top = max(peak, stored) if todo else stored or peak
        summary = summarize(
            task_label(pipeline),
            method_name(config),
            records,
            config.seed,
            top,
            pipeline.producer.control,
            config.models.dtype,
        )
        folder.write_summary(summary)
        return asdict(summary)

    return Summary.from_dict(distributed.on_main(finish))
