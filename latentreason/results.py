"""Results folders: resolved config, per-example JSONL and a summary.

Layout of one run's folder::

    config.yaml      the resolved config (re-runnable with --config)
    samples.jsonl    one line per example, appended and fsynced as it finishes
    summary.json     accuracy (strict and flexible, 95% Wilson interval), speed
    summary.md       the same as a table

Re-running into an existing folder skips the examples already in
``samples.jsonl``, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from latentreason.checkpoint import atomic_write
from latentreason.config import RunConfig, dump_config
from latentreason.errors import LatentReasonError
from latentreason.pipeline import Prediction


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (``(0, 0)`` when ``n == 0``)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def prediction_record(pred: Prediction) -> dict[str, Any]:
    """The JSONL record of one prediction."""
    ex = pred.example
    return {
        "id": ex.id,
        "question": ex.question,
        "prompt": pred.prompt,
        "generation": pred.generations[0],
        "strict": pred.score.strict,
        "flexible": pred.score.flexible,
        "gold": ex.answer,
        "strict_correct": pred.score.strict_correct,
        "flexible_correct": pred.score.flexible_correct,
        "new_tokens": pred.new_tokens,
        "latency_s": round(pred.latency_s, 4),
    } | ({"samples": pred.generations} if len(pred.generations) > 1 else {})


@dataclass
class Summary:
    """Aggregate figures of a run."""

    task: str
    producer: str
    n: int
    strict_acc: float
    strict_ci: tuple[float, float]
    flexible_acc: float
    flexible_ci: tuple[float, float]
    mean_new_tokens: float
    examples_per_s: float
    tokens_per_s: float
    seed: int = 0
    peak_memory_gib: float = 0.0

    def table(self) -> str:
        """A one-row Markdown table."""
        head = "| task | producer | n | acc strict (95% CI) | acc flexible (95% CI) | mean new tokens | examples/s | tokens/s | peak mem GiB |"
        sep = "|---|---|---|---|---|---|---|---|---|"
        row = (
            f"| {self.task} | {self.producer} | {self.n} "
            f"| {self.strict_acc:.3f} ({self.strict_ci[0]:.3f}-{self.strict_ci[1]:.3f}) "
            f"| {self.flexible_acc:.3f} ({self.flexible_ci[0]:.3f}-{self.flexible_ci[1]:.3f}) "
            f"| {self.mean_new_tokens:.1f} | {self.examples_per_s:.3f} | {self.tokens_per_s:.1f} | {self.peak_memory_gib:.2f} |"
        )
        return "\n".join([head, sep, row])


def summarize(task: str, producer: str, records: list[dict[str, Any]], seed: int = 0, peak_memory_gib: float = 0.0) -> Summary:
    """Summarize per-example records (speed from their per-example latencies)."""
    n = len(records)
    strict = sum(r["strict_correct"] for r in records)
    flexible = sum(r["flexible_correct"] for r in records)
    tokens = sum(r["new_tokens"] for r in records)
    seconds = sum(r["latency_s"] for r in records)
    return Summary(
        task=task,
        producer=producer,
        n=n,
        strict_acc=strict / n if n else 0.0,
        strict_ci=wilson_interval(strict, n),
        flexible_acc=flexible / n if n else 0.0,
        flexible_ci=wilson_interval(flexible, n),
        mean_new_tokens=tokens / n if n else 0.0,
        examples_per_s=n / seconds if seconds else 0.0,
        tokens_per_s=tokens / seconds if seconds else 0.0,
        seed=seed,
        peak_memory_gib=peak_memory_gib,
    )


RESUME_FREE_KEYS = {("data", "limit"), ("data", "offset"), ("generation", "batch_size"), ("output_dir",)}


def _flatten(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, (*prefix, key)))
        else:
            flat[(*prefix, key)] = value
    return flat


def _check_same_run(config_file: Path, config: RunConfig) -> None:
    """Refuse to resume a folder written by a run with other settings."""
    old = _flatten(yaml.safe_load(config_file.read_text(encoding="utf-8")) or {})
    new = _flatten(config.model_dump(mode="json"))
    differ = sorted(".".join(k) for k in set(old) | set(new) if k not in RESUME_FREE_KEYS and old.get(k) != new.get(k))
    if differ:
        raise LatentReasonError(
            f"Results folder {str(config_file.parent)!r} holds a run with other settings ({', '.join(differ)}); "
            "its finished examples cannot be reused. Choose another --output folder or delete it."
        )


class ResultsFolder:
    """One run's results folder (see the module docstring).

    Args:
        path: the folder; created if missing.
        config: the run's config, written as ``config.yaml``.
    """

    def __init__(self, path: str | Path, config: RunConfig) -> None:
        self.path = Path(path)
        self.samples = self.path / "samples.jsonl"
        config_file = self.path / "config.yaml"
        if self.samples.exists() and config_file.exists():
            _check_same_run(config_file, config)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(config_file, lambda tmp: Path(tmp).write_text(dump_config(config)))

    def done(self) -> list[dict[str, Any]]:
        """Records already written (a torn last line from a crash is ignored)."""
        if not self.samples.exists():
            return []
        records = []
        for line in self.samples.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append records and fsync, so a crash loses at most the batch in flight."""
        with open(self.samples, "a", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_summary(self, summary: Summary) -> None:
        """Write ``summary.json`` and ``summary.md``."""
        atomic_write(self.path / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(asdict(summary), indent=2)))
        atomic_write(self.path / "summary.md", lambda tmp: Path(tmp).write_text(summary.table() + "\n"))
