"""Results folders in lm-eval's output layout, for lm-eval's tooling (tables, hub cards, loaders).

lm-eval writes, per model, ``<output>/<model>/results_<date>.json`` (the
metrics of every task, the task configs, sample counts and the model's
arguments) and one ``samples_<task>_<date>.jsonl`` per task (each document
with its prompt, response, filtered answer and metric, once per filter).
:func:`export_lm_eval` writes the same for a run or comparison folder: every
method and seed is a model, named ``latentreason__<method>__seed<seed>``,
and each of its tasks a task named as in this project; this project's
strict and flexible answers are the filters ``strict-match`` and
``flexible-extract`` (the names of lm-eval's GSM8K filters), scored with
``exact_match`` by this project's own verdicts. The export needs no lm-eval.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from latentreason.config import RunConfig, load_config
from latentreason.errors import LatentReasonError
from latentreason.evaluation.runner import method_name
from latentreason.evaluation.tables import Cell, read_cell

FILTERS = {"strict-match": "strict", "flexible-extract": "flexible"}
"""lm-eval filter names for this project's answers."""

INVALID = "[invalid]"
"""lm-eval's answer when a filter reads nothing."""


def _hash(text: str) -> str:
    """lm-eval's ``hash_string``: SHA-256 hex digest."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sanitize(name: str) -> str:
    """lm-eval's ``sanitize_model_name``: a folder name."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _stderr(values: list[float]) -> float:
    """lm-eval's ``mean_stderr``: sample standard deviation over sqrt(n) (0 for fewer than two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def _version() -> str:
    try:
        return version("latentreason")
    except PackageNotFoundError:
        return "unknown"


def model_args(config: RunConfig) -> str:
    """The ``--model_args`` of lm-eval's ``latentreason`` model that name this run's method and models."""
    models = config.models
    args = {
        "producer": config.producer.name,
        "n_thoughts": config.producer.options.get("n_thoughts"),
        "decoder": config.decoder.name if config.decoder else None,
        "checkpoint": ";".join(config.checkpoints()) or None,
        "llm": models.llm,
        "assistant": models.assistant,
        "dtype": models.dtype,
        "quantize": models.quantize,
        "batch_size": config.generation.batch_size,
        "prompt_style": None if config.prompt_style == "default" else config.prompt_style,
    }
    return ",".join(f"{k}={v}" for k, v in args.items() if v is not None)


def gen_kwargs(config: RunConfig) -> dict[str, Any]:
    """The run's generation settings in lm-eval's terms."""
    generation = config.generation
    return {
        "until": [],
        "max_gen_toks": generation.max_new_tokens,
        "do_sample": generation.do_sample,
        "temperature": generation.temperature if generation.do_sample else 0.0,
        "top_p": generation.top_p,
    }


def samples(cell: Cell, config: RunConfig) -> list[dict[str, Any]]:
    """A cell's records as lm-eval's per-sample lines: each document once per filter.

    Args:
        cell: the run.
        config: its config.

    Returns:
        The lines, by document then filter, as lm-eval writes them.
    """
    kwargs = gen_kwargs(config)
    lines = []
    for doc_id, record in enumerate(cell.records):
        doc = {"id": record["id"], "question": record["question"], "answer": record["gold"]}
        doc |= {"options": record["options"]} if "options" in record else {}
        target = str(record["gold"])
        hashes = {
            "doc_hash": _hash(json.dumps(doc, indent=2, ensure_ascii=False)),
            "prompt_hash": _hash(record["prompt"]),
            "target_hash": _hash(target),
        }
        for name, ours in FILTERS.items():
            answer = record[ours]
            lines.append(
                {
                    "doc_id": doc_id,
                    "doc": doc,
                    "target": target,
                    "arguments": {"gen_args_0": {"arg_0": record["prompt"], "arg_1": kwargs}},
                    "resps": [record.get("samples", [record["generation"]])],
                    "filtered_resps": [INVALID if answer is None else str(answer)],
                    "filter": name,
                    "metrics": ["exact_match"],
                    **hashes,
                    "exact_match": float(bool(record[f"{ours}_correct"])),
                }
            )
    return lines


def task_config(task: str, config: RunConfig, n: int) -> dict[str, Any]:
    """The ``configs`` entry of a task: what lm-eval records of a task, filled from the run's config."""
    return {
        "task": task,
        "dataset_path": config.data.source or f"latentreason:{task}",
        "test_split": config.data.split,
        "doc_to_text": "latentreason prompt: the task's instruction as system turn, the question (with its options) "
        "as user turn, the method's thoughts injected",
        "doc_to_target": "{{answer}}",
        "output_type": "generate_until",
        "generation_kwargs": gen_kwargs(config),
        "repeats": config.generation.samples,
        "num_fewshot": 0,
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "filter_list": [
            {"name": name, "filter": [{"function": f"latentreason {ours}"}]} for name, ours in FILTERS.items()
        ],
        "metadata": {"version": _version(), "n": n, "latentreason_config": config.model_dump(mode="json")},
    }


def results(cells: list[tuple[Cell, RunConfig, list[dict[str, Any]]]], date: float) -> dict[str, Any]:
    """lm-eval's aggregated results of one model (a method and seed) over its tasks.

    Args:
        cells: the model's runs, one per task, with their configs and :func:`samples` lines.
        date: the export's time (seconds since the epoch).
    """
    first = cells[0][1]
    out: dict[str, Any] = {"results": {}, "group_subtasks": {}, "configs": {}, "versions": {}, "n-shot": {}}
    out |= {"higher_is_better": {}, "n-samples": {}, "task_hashes": {}}
    for cell, config, lines in cells:
        task, n = cell.summary.task, len(cell.records)
        metrics: dict[str, Any] = {"name": task, "alias": task, "sample_len": n}
        for name, ours in FILTERS.items():
            values = [float(bool(r[f"{ours}_correct"])) for r in cell.records]
            metrics[f"exact_match,{name}"] = sum(values) / n if n else 0.0
            metrics[f"exact_match_stderr,{name}"] = _stderr(values)
        out["results"][task] = metrics
        out["configs"][task] = task_config(task, config, n)
        out["versions"][task] = _version()
        out["n-shot"][task] = 0
        out["higher_is_better"][task] = {"exact_match": True}
        out["n-samples"][task] = {"original": n, "effective": n}
        out["task_hashes"][task] = _hash("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in lines))
    name = f"latentreason__{method_name(first)}__seed{first.seed}"
    seconds = sum(r.get("latency_s", 0.0) for cell, _, _ in cells for r in cell.records)
    out["config"] = {
        "model": "latentreason",
        "model_args": model_args(first),
        "batch_size": first.generation.batch_size,
        "batch_sizes": [],
        "device": first.models.device,
        "use_cache": None,
        "limit": first.data.limit,
        "bootstrap_iters": 0,
        "gen_kwargs": gen_kwargs(first),
        "random_seed": first.seed,
        "numpy_seed": first.seed,
        "torch_seed": first.seed,
        "fewshot_seed": first.seed,
    }
    out |= {
        "git_hash": None,
        "date": date,
        "model_source": "latentreason",
        "model_name": name,
        "model_name_sanitized": _sanitize(name),
        "system_instruction": None,
        "system_instruction_sha": None,
        "fewshot_as_multiturn": False,
        "chat_template": None,
        "chat_template_sha": None,
        "total_evaluation_time_seconds": str(seconds),
    }
    return out


def export_lm_eval(folder: str | Path, output: str | Path | None = None) -> list[Path]:
    """Write a run or comparison folder in lm-eval's output layout.

    Args:
        folder: a run folder or a comparison folder (every ``summary.json`` under it is a run).
        output: where to write (default ``<folder>/lm-eval``); each model gets a folder in it.

    Returns:
        The files written: per model its ``results_<date>.json``, then its ``samples_<task>_<date>.jsonl``.

    Raises:
        LatentReasonError: there is no finished run under ``folder``.
    """
    folder = Path(folder)
    output = Path(output) if output is not None else folder / "lm-eval"
    runs = sorted(p.parent for p in folder.rglob("summary.json"))
    if not runs:
        raise LatentReasonError(
            f"No summary.json under {str(folder)!r}: run `latentreason run --output {folder}` first."
        )
    models: dict[tuple[str, int], list[tuple[Cell, RunConfig, list[dict[str, Any]]]]] = {}
    for run in runs:
        cell, config = read_cell(run), load_config(run / "config.yaml")
        models.setdefault((method_name(config), config.seed), []).append((cell, config, samples(cell, config)))
    now = time.time()
    date_id = datetime.fromtimestamp(now).isoformat().replace(":", "-")
    written = []
    for cells in models.values():
        aggregated = results(cells, now)
        path = output / aggregated["model_name_sanitized"]
        path.mkdir(parents=True, exist_ok=True)
        written.append(path / f"results_{date_id}.json")
        written[-1].write_text(json.dumps(aggregated, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        for cell, _, lines in cells:
            written.append(path / f"samples_{cell.summary.task}_{date_id}.jsonl")
            written[-1].write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in lines), encoding="utf-8")
    return written
