"""Comparison tables: accuracy, paired differences against a reference, trivial baselines and costs.

A comparison is a list of :class:`Cell` (one results folder: a method on a
task with a seed). Rows group a method's seeds. Every row but the
reference's gets the paired difference of flexible accuracy against the
reference method on the same examples of the same task, with a 95% paired
bootstrap interval and McNemar's exact p-value (:mod:`latentreason.evaluation.stats`);
a method with several seeds is scored per example by the share of its seeds
right, and the test is then McNemar's generalisation (exact sign flips);
with several references (``reference: [cot, pause-trained]``), a pair of
such columns for each.
Below the table: the trivial baselines of each task's examples, a
warning for every run with more than 5% of its chains cut by the token cap,
and the machine(s) the speeds were measured on; then, where the comparison
has them, its thought ablations paired with their methods and the thought
audits found beside its cells (:mod:`latentreason.evaluation.thought_report`).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from latentreason.errors import LatentReasonError
from latentreason.evaluation.audit_table import audit_table
from latentreason.evaluation.results import (
    UNRECORDED,
    Summary,
    control_note,
    machines_text,
    method_cell,
    truncation_warning,
)
from latentreason.evaluation.stats import Paired, baselines, paired


@dataclass
class Cell:
    """One run of a comparison: its summary and its per-example records (in example order).

    Attributes:
        summary: the run's summary.
        records: its per-example records.
        folder: its results folder, when read from one.
        config: its resolved config as stored there (``config.yaml``; empty if none).
    """

    summary: Summary
    records: list[dict[str, Any]] = field(default_factory=list)
    folder: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def correct(self, ids: list[str], kind: str = "flexible") -> list[bool]:
        """Correctness on ``ids``, in that order."""
        by_id = {r["id"]: r for r in self.records}
        return [bool(by_id[i][f"{kind}_correct"]) for i in ids]

    @property
    def machines(self) -> str:
        """The machine(s) that answered its examples (:func:`~latentreason.evaluation.results.machines_text`)."""
        return machines_text(dict(Counter(r.get("machine", UNRECORDED) for r in self.records)))


def read_cell(folder: str | Path) -> Cell:
    """The cell a results folder holds (``summary.json`` and the summary's ``n`` first records of ``samples.jsonl``).

    A folder that served runs with other limits keeps their extra records
    after the last run's (see :meth:`latentreason.evaluation.results.ResultsFolder.merge`); they are not the
    summary's examples, so they stay out of the paired tests and baselines.
    """
    folder = Path(folder)
    summary = Summary.from_dict(json.loads((folder / "summary.json").read_text()))
    lines = (
        (folder / "samples.jsonl").read_text(encoding="utf-8").split("\n")
        if (folder / "samples.jsonl").exists()
        else []
    )
    records = [json.loads(line) for line in lines if line.strip()]
    config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    # the run's examples come first; later lines are other runs' extras
    return Cell(summary, records[: summary.n], folder, config or {})


def load_cells(folder: str | Path) -> list[Cell]:
    """Every cell under ``folder`` (a run or a comparison folder), sorted by task, method and seed.

    Raises:
        LatentReasonError: if there is none.
    """
    folder = Path(folder)
    cells = [read_cell(path.parent) for path in sorted(folder.rglob("summary.json"))]
    if not cells:
        raise LatentReasonError(
            f"No summary.json under {str(folder)!r}: run `latentreason run --output {folder}` first."
        )
    return sorted(cells, key=lambda c: (c.summary.task, c.summary.method, c.summary.seed))


@dataclass
class Row:
    """One (task, method) line of the comparison, over seeds."""

    task: str
    method: str
    cells: list[Cell]

    @property
    def runs(self) -> list[Summary]:
        """The summaries of its seeds."""
        return [c.summary for c in self.cells]

    def _stat(self, attr: str) -> tuple[float, float]:
        values = [getattr(r, attr) for r in self.runs]
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    def pooled_truncation(self) -> Summary:
        """The first run's summary with the truncated share averaged over seeds (for the warning)."""
        return replace(self.runs[0], truncated_share=self._stat("truncated_share")[0])

    def scores(self, ids: list[str], kind: str = "flexible") -> list[float]:
        """Per example of ``ids``: the share of this row's seeds that got it right."""
        per_seed = [cell.correct(ids, kind) for cell in self.cells]  # (seeds, examples)
        return [sum(column) / len(per_seed) for column in zip(*per_seed)]

    def against(self, reference: Row, kind: str = "flexible") -> Paired | None:
        """The paired comparison with ``reference`` on the examples every run of both answered.

        Seeds are pooled per example (each side's share of seeds right), so
        the examples, not examples times seeds, are the pairs.
        """
        answered = [{r["id"] for r in cell.records} for cell in self.cells + reference.cells]
        ids = [r["id"] for r in self.cells[0].records if all(r["id"] in done for done in answered)]
        return paired(self.scores(ids, kind), reference.scores(ids, kind)) if ids else None

    def columns(self, references: list[Row]) -> dict[str, str]:
        """Formatted columns: accuracies (mean ± std over seeds, or a 95% CI for one seed), the paired tests, costs.

        Args:
            references: the rows to compare against, one pair of paired columns each (none: no such columns).
        """
        out = {
            "task": self.task,
            "method": method_cell(self.method, self.runs[0].control),
            "n": str(self.runs[0].n),
            "seeds": str(len(self.runs)),
        }
        for kind in ("strict", "flexible"):
            mean, std = self._stat(f"{kind}_acc")
            if len(self.runs) > 1:
                out[f"acc {kind}"] = f"{mean:.3f} ± {std:.3f}"
            else:
                low, high = getattr(self.runs[0], f"{kind}_ci")
                out[f"acc {kind}"] = f"{mean:.3f} [{low:.2f}, {high:.2f}]"
        for reference in references:
            test = self.against(reference) if reference is not self else None
            out[f"Δ flexible vs {reference.method} [95% CI]"] = (
                f"{test.difference:+.3f} [{test.low:+.3f}, {test.high:+.3f}]" if test else "-"
            )
            out[f"McNemar p vs {reference.method} (b/c)"] = (
                f"{test.p_value:.3g} ({test.only_method}/{test.only_reference})" if test else "-"
            )
        out["truncated"] = f"{self._stat('truncated_share')[0]:.1%}"
        out["mean new tokens"] = f"{self._stat('mean_new_tokens')[0]:.1f}"
        out["examples/s"] = f"{self._stat('examples_per_s')[0]:.3f}"
        out["wall s"] = (
            f"{statistics.fmean(r.n / r.examples_per_s if r.examples_per_s else 0.0 for r in self.runs):.0f}"
        )
        out["peak mem GiB"] = f"{max(r.peak_memory_gib for r in self.runs):.2f}"
        out["peak KV tokens"] = f"{self._stat('mean_peak_kv')[0]:.0f}"
        out["dependency"] = f"{self._stat('mean_dependency')[0]:.0f}"
        return out


def rows(cells: list[Cell]) -> list[Row]:
    """Group cells by (task, method), keeping first-seen order."""
    grouped: dict[tuple[str, str], Row] = {}
    for cell in cells:
        s = cell.summary
        grouped.setdefault((s.task, s.method), Row(s.task, s.method, [])).cells.append(cell)
    return list(grouped.values())


def reference_names(reference: str | Sequence[str] | None) -> list[str]:
    """``reference`` as a list of method names (empty: each task's first method)."""
    return [reference] if isinstance(reference, str) else list(reference or [])


def reference_rows(grouped: list[Row], reference: str | Sequence[str] | None) -> dict[str, list[Row]]:
    """Each task's reference rows, in the order named; a task with none of them gets its first row."""
    names = reference_names(reference)
    out: dict[str, list[Row]] = {}
    for name in names:
        for row in grouped:
            if row.method == name:
                out.setdefault(row.task, []).append(row)
    for row in grouped:  # a task without any named reference falls back to its first method
        out.setdefault(row.task, [row])
    return out


POOLED_SEEDS = (
    "rows with several seeds: accuracy is mean ± std over seeds; the paired columns score each problem by the share "
    "of a method's seeds that got it right, resample problems (not problems x seeds), and test with the exact "
    "sign-flip test (McNemar's test when each side has one seed); b/c count problems with the higher share"
)
"""The note under a table whose rows pool seeds."""


def markdown_table(cells: list[Cell], reference: str | Sequence[str] | None = None) -> str:
    """The comparison as a Markdown table, then its trivial baselines and truncation warnings.

    Args:
        cells: the runs.
        reference: the method the paired columns compare against, or several (a pair of
            columns each); default: each task's first.
    """
    grouped = rows(cells)
    refs = reference_rows(grouped, reference)
    # tasks that lack a later reference still get its columns (as "-"), so every line has the same columns
    lines = [r.columns(refs[r.task]) for r in grouped]
    head = list(dict.fromkeys(h for line in lines for h in line))
    lines = [{h: line.get(h, "-") for h in head} for line in lines]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(line[h] for h in head) + " |" for line in lines]
    notes = baseline_lines(cells) + [w for r in grouped if (w := truncation_warning(r.pooled_truncation()))]
    controls = {r.method: control for r in grouped if (control := r.runs[0].control)}
    notes += [control_note(name, control) for name, control in controls.items()]
    if any(len(r.cells) > 1 for r in grouped):
        notes.append(POOLED_SEEDS)
    notes.append(machine_line(cells))
    sections = [section for section in (ablation_table(cells), audit_table(cells)) if section]
    return "\n".join(out + (["", *notes] if notes else []) + [line for s in sections for line in ("", *s)])


ABLATION_FREE = ("label", "thoughts_from", "audit", "output_dir")
"""Config fields an ablation cell may differ in from its method's own-thoughts cell."""


def own_thoughts_cell(ablation: Cell, cells: list[Cell]) -> Cell | None:
    """The cell of ``cells`` that is ``ablation``'s method with its own thoughts, or None.

    That is the cell whose stored config is the same but for
    :data:`ABLATION_FREE` (so the same task, seed, producer and weights), with
    ``thoughts_from: own``.
    """

    def key(cell: Cell) -> dict[str, Any]:
        return {k: v for k, v in cell.config.items() if k not in ABLATION_FREE}

    wanted = key(ablation)
    return next((c for c in cells if c.config.get("thoughts_from") == "own" and key(c) == wanted), None)


def changed(cell: Cell, own: Cell) -> tuple[float, float, int]:
    """On the problems both answered: the share whose chain's text differs, whose flexible answer differs, and how many."""
    mine = {r["id"]: r for r in own.records}
    pairs = [(r, mine[r["id"]]) for r in cell.records if r["id"] in mine]
    if not pairs:
        return 0.0, 0.0, 0
    text = sum(a["generation"] != b["generation"] for a, b in pairs) / len(pairs)
    answer = sum(a["flexible"] != b["flexible"] for a, b in pairs) / len(pairs)
    return text, answer, len(pairs)


def ablation_table(cells: list[Cell]) -> list[str]:
    """Each thoughts ablation (``thoughts_from`` other than ``own``) against its method's own thoughts, as Markdown lines.

    Per ablation method and task, over the seeds whose own-thoughts cell is in
    the comparison (:func:`own_thoughts_cell`): the share of problems whose
    text and whose answer changed (mean over seeds), and the paired
    difference in flexible accuracy with its test, as in the main table.
    Empty when there is no such pair.
    """
    pairs: dict[tuple[str, str, str, str], list[tuple[Cell, Cell]]] = {}
    for cell in cells:
        ablation = cell.config.get("thoughts_from", "own")
        own = own_thoughts_cell(cell, cells) if ablation != "own" else None
        if own is not None:
            key = (cell.summary.task, cell.summary.method, ablation, own.summary.method)
            pairs.setdefault(key, []).append((cell, own))
    if not pairs:
        return []
    lines = [
        "thoughts ablations against the same method with its own thoughts (same seeds, weights and problems):",
        "",
        "| task | method | thoughts_from | against | seeds | n | text changed | answer changed "
        "| Δ flexible [95% CI] | McNemar p (b/c) |",
        "|" + "---|" * 10,
    ]
    for (task, label, ablation, own_label), found in pairs.items():
        shares = [changed(cell, own) for cell, own in found]
        test = Row(task, label, [c for c, _ in found]).against(Row(task, own_label, [o for _, o in found]))
        lines.append(
            f"| {task} | {label} | {ablation} | {own_label} | {len(found)} | {shares[0][2]} "
            f"| {statistics.fmean(s[0] for s in shares):.1%} | {statistics.fmean(s[1] for s in shares):.1%} "
            + (
                f"| {test.difference:+.3f} [{test.low:+.3f}, {test.high:+.3f}] "
                f"| {test.p_value:.3g} ({test.only_method}/{test.only_reference}) |"
                if test
                else "| - | - |"
            )
        )
    return lines


def baseline_lines(cells: list[Cell]) -> list[str]:
    """One line per task: the trivial baselines of the examples its first method answered."""
    lines: list[str] = []
    for row in rows(cells):
        if any(line.startswith(f"trivial baselines on {row.task} ") for line in lines):
            continue
        records = row.cells[0].records
        if not records:
            continue
        options = [r["options"] for r in records if "options" in r]
        b = baselines([str(r["gold"]) for r in records], options if len(options) == len(records) else None)
        uniform = f"; uniform guess {b.uniform:.3f}" if b.uniform is not None else ""
        lines.append(
            f"trivial baselines on {row.task} (n={b.n}): always {b.majority_answer!r} {b.majority:.3f}{uniform}"
        )
    return lines


def machine_line(cells: list[Cell]) -> str:
    """The machine the speeds were measured on, or, where cells ran on several, which ran on which."""
    by_machine: dict[str, list[str]] = {}
    for cell in cells:
        by_machine.setdefault(cell.machines, []).append(f"{cell.summary.method} seed {cell.summary.seed}")
    if len(by_machine) <= 1:
        return f"machine: {next(iter(by_machine), UNRECORDED)}"
    where = "; ".join(f"{', '.join(runs)} on {machine}" for machine, runs in by_machine.items())
    return f"machines differ (compare examples/s and wall s only within one): {where}"


def csv_table(cells: list[Cell], reference: str | Sequence[str] | None = None) -> str:
    """The comparison as CSV with raw numbers: one line per run and reference (paired figures against its run)."""
    buffer = io.StringIO()
    fields = [
        "task",
        "producer",  # the method's label: the column name every comparison.csv so far has
        "seed",
        "n",
        "strict_acc",
        "strict_ci_low",
        "strict_ci_high",
        "flexible_acc",
        "flexible_ci_low",
        "flexible_ci_high",
        "reference",
        "flexible_diff",
        "flexible_diff_low",
        "flexible_diff_high",
        "mcnemar_p",
        "only_method",
        "only_reference",
        "strict_diff",
        "truncated_share",
        "mean_new_tokens",
        "examples_per_s",
        "tokens_per_s",
        "peak_memory_gib",
        "mean_peak_kv",
        "mean_dependency",
        "control",
        "machine",
    ]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    refs = reference_rows(rows(cells), reference)
    for cell in cells:
        s = cell.summary
        own = Row(s.task, s.method, [cell])
        for ref in refs[s.task]:
            flexible = own.against(ref) if ref.method != s.method else None
            strict = own.against(ref, "strict") if flexible else None
            writer.writerow(
                {
                    "task": s.task,
                    "producer": s.method,
                    "seed": s.seed,
                    "n": s.n,
                    "strict_acc": s.strict_acc,
                    "strict_ci_low": s.strict_ci[0],
                    "strict_ci_high": s.strict_ci[1],
                    "flexible_acc": s.flexible_acc,
                    "flexible_ci_low": s.flexible_ci[0],
                    "flexible_ci_high": s.flexible_ci[1],
                    "reference": ref.method,
                    "flexible_diff": flexible.difference if flexible else "",
                    "flexible_diff_low": flexible.low if flexible else "",
                    "flexible_diff_high": flexible.high if flexible else "",
                    "mcnemar_p": flexible.p_value if flexible else "",
                    "only_method": flexible.only_method if flexible else "",
                    "only_reference": flexible.only_reference if flexible else "",
                    "strict_diff": strict.difference if strict else "",
                    "truncated_share": s.truncated_share,
                    "mean_new_tokens": s.mean_new_tokens,
                    "examples_per_s": s.examples_per_s,
                    "tokens_per_s": s.tokens_per_s,
                    "peak_memory_gib": s.peak_memory_gib,
                    "mean_peak_kv": s.mean_peak_kv,
                    "mean_dependency": s.mean_dependency,
                    "control": s.control or "",
                    "machine": cell.machines,
                }
            )
    return buffer.getvalue()
