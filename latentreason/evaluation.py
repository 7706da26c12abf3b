"""Evaluate a pipeline on a task, with progress, resume and a summary."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from latentreason.memory import PeakMemory
from latentreason.pipeline import Pipeline
from latentreason.results import ResultsFolder, Summary, prediction_record, summarize
from latentreason.task import Example


def default_output(pipeline: Pipeline) -> Path:
    """``<output_dir>/<task>-<producer>-<split>`` for a run without an explicit folder."""
    config = pipeline.config
    split = config.data.split or pipeline.task.eval_split
    return Path(config.output_dir) / f"{pipeline.task.name}-{config.producer.name}-{split}"


def evaluate(
    pipeline: Pipeline,
    examples: list[Example],
    output: str | Path | None = None,
    *,
    progress: bool = True,
) -> Summary:
    """Answer ``examples`` in batches, appending each batch to the results folder.

    Examples already in the folder's ``samples.jsonl`` (from an interrupted run
    with the same settings) are not recomputed.

    Args:
        pipeline: the method to evaluate.
        examples: what to evaluate on.
        output: results folder (default: :func:`default_output`).
        progress: show a progress bar.

    Returns:
        The summary over ``examples``, also written to the folder.
    """
    folder = ResultsFolder(output or default_output(pipeline), pipeline.config)
    wanted = {ex.id for ex in examples}
    done = {r["id"]: r for r in folder.done() if r["id"] in wanted}
    todo = [ex for ex in examples if ex.id not in done]
    size = pipeline.config.generation.batch_size
    with PeakMemory(pipeline.runtime.device) as memory, tqdm(total=len(examples), initial=len(done), desc=f"{pipeline.task.name}/{pipeline.config.producer.name}",
              unit="ex", disable=not progress) as bar:
        for start in range(0, len(todo), size):
            records = [prediction_record(p) for p in pipeline.answer(todo[start : start + size])]
            folder.append(records)
            done.update((r["id"], r) for r in records)
            bar.update(len(records))
    config = pipeline.config
    records = [done[ex.id] for ex in examples]
    summary = summarize(pipeline.task.name, config.producer.name, records, config.seed, memory.peak_gib)
    folder.write_summary(summary)
    return summary
