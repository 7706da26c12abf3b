"""Results folders: resolved config, per-example JSONL and a summary.

Layout of one run's folder::

    config.yaml      the resolved config (re-runnable with --config)
    weights.json     the SHA-256 of every weights file the run loaded (checkpoints, a shipped projector)
    samples.jsonl    one line per example, appended and fsynced as each is done
    summary.json     accuracy (strict and flexible, 95% Wilson interval), speed
    summary.md       the same as a table

A distributed evaluation (torchrun) writes one ``samples.rank<r>.jsonl`` per
rank while it runs; rank 0 then merges them into ``samples.jsonl`` and deletes
them. Re-running into an existing folder skips the examples already in
``samples.jsonl`` or in a shard file, so an interrupted evaluation resumes
where it stopped (with any number of processes), provided its settings and
the bytes of its weights are the same (a checkpoint retrained under the same
path cannot extend an evaluation of the old weights).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from latentreason.assembly.pipeline import Prediction
from latentreason.config import RunConfig, dump_config
from latentreason.errors import LatentReasonError
from latentreason.evaluation.stats import wilson_interval
from latentreason.storage import atomic_write, file_digest


def prediction_record(pred: Prediction, machine: str) -> dict[str, Any]:
    """The JSONL record of one prediction, answered on ``machine`` (see :func:`~latentreason.models.runtime.machine_label`)."""
    ex = pred.example
    return (
        {
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
            "peak_kv": pred.peak_kv,
            "dependency": pred.dependency,
            "truncated": pred.truncated,
            "machine": machine,
        }
        | ({"options": len(ex.choices)} if ex.choices else {})
        | ({"samples": pred.generations} if len(pred.generations) > 1 else {})
        | ({"soft_steps": pred.soft_steps} if any(pred.soft_steps) else {})
    )


@dataclass
class Summary:
    """Aggregate figures of a run."""

    task: str
    method: str
    """The method's label (``label``, else ``producer`` or ``producer+decoder``; see :func:`latentreason.evaluation.runner.method_name`)."""
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
    mean_peak_kv: float = 0.0
    mean_dependency: float = 0.0
    truncated_share: float = 0.0
    machines: dict[str, int] = field(default_factory=dict)
    """How many examples each machine answered (:data:`UNRECORDED` for records older than the field)."""
    control: str | None = None
    """What makes the method a control (e.g. an oracle that reads the gold), or None for a method."""
    dtype: str = ""
    """The dtype the models computed in (``auto`` resolved); empty in summaries written before the field."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """The summary ``asdict`` (or ``summary.json``) describes; files written before 0.3 name the method ``producer``."""
        data = {("method" if key == "producer" else key): value for key, value in data.items()}
        return cls(**{**data, "strict_ci": tuple(data["strict_ci"]), "flexible_ci": tuple(data["flexible_ci"])})

    def table(self) -> str:
        """A one-row Markdown table."""
        head = (
            "| task | method | n | acc strict (95% CI) | acc flexible (95% CI) | truncated | mean new tokens "
            "| examples/s | tokens/s | peak mem GiB |"
        )
        sep = "|---|---|---|---|---|---|---|---|---|---|"
        row = (
            f"| {self.task} | {method_cell(self.method, self.control)} | {self.n} "
            f"| {self.strict_acc:.3f} ({self.strict_ci[0]:.3f}-{self.strict_ci[1]:.3f}) "
            f"| {self.flexible_acc:.3f} ({self.flexible_ci[0]:.3f}-{self.flexible_ci[1]:.3f}) | {self.truncated_share:.1%} "
            f"| {self.mean_new_tokens:.1f} | {self.examples_per_s:.3f} | {self.tokens_per_s:.1f} | {self.peak_memory_gib:.2f} |"
        )
        dtype = f"; dtype: {self.dtype}" if self.dtype else ""
        notes = [control_note(self.method, self.control)] if self.control else []
        return "\n".join([head, sep, row, "", *notes, f"machine: {machines_text(self.machines)}{dtype}"])


def method_cell(name: str, control: str | None) -> str:
    """A method's name in a table, ``"name (control)"`` for a control."""
    return f"{name} (control)" if control else name


def control_note(name: str, control: str) -> str:
    """The line under a table that says why a row is a control."""
    return f"{name} is a control, not a method ({control}): a ceiling or floor to read the methods against"


def summarize(
    task: str,
    method: str,
    records: list[dict[str, Any]],
    seed: int = 0,
    peak_memory_gib: float = 0.0,
    control: str | None = None,
    dtype: str = "",
) -> Summary:
    """Summarize per-example records (speed from their per-example latencies), computed in ``dtype``; ``control`` marks a control (see :class:`Summary`)."""
    n = len(records)
    strict = sum(r["strict_correct"] for r in records)
    flexible = sum(r["flexible_correct"] for r in records)
    tokens = sum(r["new_tokens"] for r in records)
    seconds = sum(r["latency_s"] for r in records)
    return Summary(
        task=task,
        method=method,
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
        mean_peak_kv=sum(r.get("peak_kv", 0) for r in records) / n if n else 0.0,
        mean_dependency=sum(r.get("dependency", 0) for r in records) / n if n else 0.0,
        truncated_share=truncated_share(records),
        machines=dict(Counter(r.get("machine", UNRECORDED) for r in records)),
        control=control,
        dtype=dtype,
    )


UNRECORDED = "not recorded"
"""The machine of a record written before records named theirs."""


def machines_text(machines: dict[str, int]) -> str:
    """``machines`` for a reader: the one machine, or each with its share of the examples."""
    if len(machines) == 1:
        return next(iter(machines))
    total = sum(machines.values())
    return "; ".join(f"{name} ({count} of {total} examples)" for name, count in machines.items())


TRUNCATION_WARNING = 0.05
"""Above this share of chains cut by ``max_new_tokens``, accuracy partly measures who fits in the cap."""


def truncated_share(records: list[dict[str, Any]]) -> float:
    """The share of chains that reached ``max_new_tokens`` without finishing (all chains of every record)."""
    chains = sum(len(r.get("samples", [None])) for r in records)
    return sum(int(r.get("truncated", 0)) for r in records) / chains if chains else 0.0


def truncation_warning(summary: Summary, max_new_tokens: int | None = None) -> str | None:
    """A warning when more than :data:`TRUNCATION_WARNING` of a run's chains were cut, else None."""
    if summary.truncated_share <= TRUNCATION_WARNING:
        return None
    cap = f"max_new_tokens={max_new_tokens}" if max_new_tokens else "max_new_tokens"
    return (
        f"warning: {summary.truncated_share:.0%} of {summary.method}'s chains on {summary.task} were cut at {cap} "
        "(over 5%): its accuracy partly measures who fits in the cap; raise generation.max_new_tokens"
    )


SHARD_PATTERN = re.compile(r"samples\.rank(\d+)\.jsonl")

RESUME_FREE_KEYS = {
    ("data", "limit"),
    ("data", "offset"),
    ("generation", "batch_size"),
    ("generation", "continuous_batching"),
    ("output_dir",),
    ("label",),
}


def _flatten(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat = {}
    for key, value in tree.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, path))
        else:
            flat[path] = value
    return flat


def _check_same_run(config_file: Path, config: RunConfig) -> None:
    """Refuse to resume a folder written by a run with other settings.

    A setting added to the config since the folder was written counts as
    the same when this run leaves it at its default.
    """
    old = _flatten(yaml.safe_load(config_file.read_text(encoding="utf-8")) or {})
    new = _flatten(config.model_dump(mode="json"))
    defaults = _flatten(RunConfig().model_dump(mode="json"))
    old |= {k: defaults[k] for k in new if k not in old and k in defaults}
    differ = sorted(".".join(k) for k in set(old) | set(new) if k not in RESUME_FREE_KEYS and old.get(k) != new.get(k))
    dtype = ("models", "dtype")
    if "models.dtype" in differ:
        others = [k for k in differ if k != "models.dtype"]
        raise LatentReasonError(
            f"Results folder {str(config_file.parent)!r} was started in {old.get(dtype)} and this run computes in "
            f"{new.get(dtype)} (models.dtype, 'auto' resolved on this machine)"
            + (f", with other settings too ({', '.join(others)})" if others else "")
            + f"; its finished examples cannot be mixed with new ones. Pin the dtype it started with (--dtype "
            f"{old.get(dtype)}, or models: {{dtype: {old.get(dtype)}}} in the experiment file's base), or choose "
            "another --output folder."
        )
    if differ:
        raise LatentReasonError(
            f"Results folder {str(config_file.parent)!r} holds a run with other settings ({', '.join(differ)}); "
            "its finished examples cannot be reused. Choose another --output folder or delete it."
        )


def _read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file; a torn line from a crash (or any line that is not a record) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028 may occur inside a record
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "id" in record:
            records.append(record)
    return records


def _lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


class ResultsFolder:
    """One run's results folder (see the module docstring).

    Args:
        path: the folder.
        config: the run's config.
        prepare: refuse a folder holding results of other settings or other
            weights, create the folder and write ``config.yaml`` and
            ``weights.json``; a distributed run lets rank 0 alone do this.
        weights: the weights files the run loaded (``Pipeline.checkpoints``).
    """

    def __init__(
        self, path: str | Path, config: RunConfig, *, prepare: bool = True, weights: Sequence[str] = ()
    ) -> None:
        self.path = Path(path)
        self.samples = self.path / "samples.jsonl"
        if not prepare:
            return
        config_file, weights_file = self.path / "config.yaml", self.path / "weights.json"
        digests = [[Path(p).name, file_digest(p)] for p in weights]  # names for the reader; digests are compared
        mine = sorted(d for _, d in digests)
        started = self.samples.exists() or bool(self.shard_files())
        if config_file.exists() and started:
            _check_same_run(config_file, config)
        if weights_file.exists() and started:
            stored = [d for _, d in json.loads(weights_file.read_text(encoding="utf-8"))["sha256"]]
            if sorted(stored) != mine:
                raise LatentReasonError(
                    f"Results folder {str(self.path)!r} holds examples answered with other weights "
                    f"(weights.json: {stored}; this run: {mine}), e.g. a checkpoint trained "
                    "again under the same path; its examples cannot be reused. Delete the folder to evaluate "
                    "the new weights, or choose another --output folder."
                )
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(config_file, lambda tmp: Path(tmp).write_text(dump_config(config)))
        text = json.dumps({"sha256": digests}, indent=1) + "\n"
        if not weights_file.exists() or weights_file.read_text(encoding="utf-8") != text:
            atomic_write(weights_file, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def shard_file(self, rank: int) -> Path:
        """The file rank ``rank`` of a distributed run appends to."""
        return self.path / f"samples.rank{rank}.jsonl"

    def shard_files(self) -> list[Path]:
        """The shard files present (from a running or interrupted distributed run), by rank."""
        if not self.path.is_dir():
            return []
        found = [(int(m[1]), p) for p in self.path.iterdir() if (m := SHARD_PATTERN.fullmatch(p.name))]
        return [p for _, p in sorted(found)]

    def done(self) -> list[dict[str, Any]]:
        """Records already written: ``samples.jsonl``, then the shard files (see :meth:`_collect`)."""
        merged, sharded = self._collect()
        return merged + sharded

    def finished(self, ids: Sequence[str]) -> list[str]:
        """The examples of ``ids`` the folder already holds a result of, in the order of ``ids`` (a resumed run skips them)."""
        written = {r["id"] for r in self.done()}
        return [i for i in ids if i in written]

    def holds(self, config: RunConfig, ids: Sequence[str]) -> bool:
        """Whether the folder is a finished run of ``config`` on ``ids``, to read back as it is.

        True when every example is :meth:`finished` and merged into
        ``samples.jsonl`` in the order of ``ids``, ``summary.json`` covers
        exactly them, the folder's settings are this run's (see
        :func:`_check_same_run`) and every checkpoint of ``config`` is among
        the weights it loaded (``weights.json``, where the folder has one):
        evaluating it again would answer nothing and rewrite nothing, so no
        model need load. False otherwise (including a folder that cannot be
        resumed: evaluating it says why).
        """
        config_file, weights_file, summary = (self.path / n for n in ("config.yaml", "weights.json", "summary.json"))
        if not (config_file.is_file() and summary.is_file()) or self.shard_files():
            return False
        if self.finished(ids) != list(ids) or json.loads(summary.read_text()).get("n") != len(ids):
            return False
        if [r["id"] for r in _read_records(self.samples)[: len(ids)]] != list(ids):
            return False
        try:
            _check_same_run(config_file, config)
        except LatentReasonError:
            return False
        if not weights_file.is_file():  # written before folders recorded their weights: as a resumed run, unchecked
            return True
        stored = {d for _, d in json.loads(weights_file.read_text(encoding="utf-8"))["sha256"]}
        return {file_digest(p) for p in config.checkpoints()} <= stored

    def _collect(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The records of ``samples.jsonl`` and those of the shard files, each example once.

        A torn last line from a crash is ignored, and so is a shard record of
        an example already in ``samples.jsonl`` (a merge was interrupted after
        replacing ``samples.jsonl`` and before deleting the shard files).

        Raises:
            LatentReasonError: two shard records of one example, which only
                two runs writing into this folder at once can cause.
        """
        merged = _read_records(self.samples)
        owner = dict.fromkeys((r["id"] for r in merged), self.samples.name)
        sharded = []
        for shard in self.shard_files():
            for record in _read_records(shard):
                first = owner.get(record["id"])
                if first == self.samples.name:
                    continue
                if first is not None:
                    raise LatentReasonError(
                        f"Example {record['id']!r} has two results in {str(self.path)!r}, in {first} and in "
                        f"{shard.name}: two runs wrote into this folder at the same time. Delete the folder "
                        "and run again."
                    )
                owner[record["id"]] = shard.name
                sharded.append(record)
        return merged, sharded

    def append(self, records: list[dict[str, Any]], rank: int | None = None) -> None:
        """Append records to ``samples.jsonl`` (or to ``rank``'s shard file) and fsync.

        A record is appended as soon as its example is answered, so a crash
        loses only the examples in flight. A torn last line left by a crash stays a
        line of its own, which :meth:`done` skips.
        """
        path = self.samples if rank is None else self.shard_file(rank)
        data = _lines(records).encode("utf-8")
        with open(path, "a+b") as f:
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def merge(self, ids: list[str]) -> list[dict[str, Any]]:
        """Fold the shard files into ``samples.jsonl`` in example order; return the records of ``ids`` in that order.

        Records are appended as examples finish, in any order. The new
        ``samples.jsonl`` holds every record in the order of ``ids`` (records
        of other examples, from runs with another limit or offset, after them
        in file order); it replaces the old one atomically before the shard
        files are deleted.

        Args:
            ids: the run's example ids, in the order of its examples.

        Raises:
            LatentReasonError: an example has no record, or two shard files
                hold the same one.
        """
        merged, sharded = self._collect()
        by_id = {r["id"]: r for r in merged + sharded}
        missing = [i for i in dict.fromkeys(ids) if i not in by_id]
        if missing:
            shown = ", ".join(repr(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise LatentReasonError(
                f"{len(missing)} example(s) have no result in {str(self.path)!r} ({shown}). Every rank writes "
                "its samples.rank<r>.jsonl into the results folder, so with several nodes it must be on a "
                "filesystem they all share. Run the same command again to compute the missing examples."
            )
        shards = self.shard_files()
        position = {i: n for n, i in enumerate(ids)}
        ordered = sorted(merged + sharded, key=lambda r: position.get(r["id"], len(position)))  # stable
        if shards or ordered != merged:
            atomic_write(self.samples, lambda tmp: Path(tmp).write_text(_lines(ordered), encoding="utf-8"))
            for shard in shards:
                shard.unlink()
        return [by_id[i] for i in ids]

    def stored_peak_memory(self) -> float:
        """The peak memory (GiB) recorded by an earlier sitting of this run, or 0 if none finished."""
        path = self.path / "summary.json"
        return float(json.loads(path.read_text()).get("peak_memory_gib", 0.0)) if path.is_file() else 0.0

    def write_summary(self, summary: Summary) -> None:
        """Write ``summary.json`` and ``summary.md``."""
        atomic_write(
            self.path / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(asdict(summary), indent=2))
        )
        atomic_write(self.path / "summary.md", lambda tmp: Path(tmp).write_text(summary.table() + "\n"))
