"""This project's GSM8K scoring against lm-eval's own, on the same generations.

:func:`cross_check` takes a results folder's records (``generation``,
``strict``, ``flexible``, ``gold``, ``*_correct``) and scores each
generation again with lm-eval's GSM8K scorers, read from lm-eval's own
task file (``gsm8k-cot-zeroshot.yaml`` by default): its filter ensembles
(``strict-match``, ``flexible-extract``) built by ``lm_eval.filters``, and
its ``exact_match`` metric with the file's ``regexes_to_ignore``. lm-eval's
``strict-match`` is set against this project's strict answer (the box),
``flexible-extract`` against its flexible one (the box, else the last
number). Every record where the two read different numbers or reach
different verdicts is a :class:`Disagreement`, with its kind.
"""

# ruff: noqa: E402  (the imports after require_lm_eval() need lm-eval)
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from latentreason.interop.lm_eval_extra import require_lm_eval

_lm_eval = require_lm_eval()

from lm_eval.api.instance import Instance
from lm_eval.api.registry import get_metric
from lm_eval.filters import build_filter_ensemble

from latentreason.components.answers import BOXED_PATTERN, numbers_equal, parse_number
from latentreason.config import load_config
from latentreason.errors import LatentReasonError
from latentreason.evaluation.results import ResultsFolder

LM_EVAL_GSM8K = Path(_lm_eval.__path__[0]) / "tasks" / "gsm8k" / "gsm8k-cot-zeroshot.yaml"
"""lm-eval's zero-shot chain-of-thought GSM8K task, whose scorers ``gsm8k_latentreason`` copies."""

PAIRS = {"strict-match": "strict", "flexible-extract": "flexible"}
"""lm-eval's filter names and this project's answer each is set against."""

INVALID = "[invalid]"
"""What lm-eval's regex filter gives when its pattern does not match."""

_BOX = re.compile(BOXED_PATTERN)
_EXCERPT = 60


@dataclass(frozen=True)
class Scorer:
    """One of lm-eval's filter ensembles with the task's metric settings.

    Attributes:
        name: the filter's name (``strict-match``, ...).
        pattern: its regex and the match it takes (``group_select``), to locate what it read.
        group_select: which match the regex filter keeps.
        steps: the ``(function, kwargs)`` steps lm-eval builds the ensemble from.
        metric: the ``exact_match`` keyword arguments (``regexes_to_ignore``, ``ignore_case``, ...).
    """

    name: str
    pattern: re.Pattern[str]
    group_select: int
    steps: list[tuple[str, dict[str, Any] | None]]
    metric: dict[str, Any]

    def read(self, generation: str) -> str:
        """What lm-eval's filters keep of a generation (``[invalid]`` when nothing matches)."""
        instance = Instance(request_type="generate_until", doc={}, arguments=(generation, {}), idx=0)
        instance.resps = [generation]
        build_filter_ensemble(self.name, self.steps).apply([instance])
        return str(instance.filtered_resps[self.name])

    def correct(self, answer: str, gold: str) -> bool:
        """lm-eval's ``exact_match`` of an answer against the gold answer."""
        return bool(get_metric("exact_match")(references=[gold], predictions=[answer], **self.metric)["exact_match"])

    def normalized(self, answer: str) -> str:
        """The answer as ``exact_match`` compares it (``regexes_to_ignore`` removed)."""
        for pattern in self.metric.get("regexes_to_ignore") or []:
            answer = re.sub(pattern, "", answer)
        return answer

    def span(self, generation: str) -> tuple[int, int] | None:
        """Where in the generation the match lm-eval keeps lies, or None."""
        matches = list(self.pattern.finditer(generation))
        return matches[self.group_select].span() if matches else None


def scorers(task_file: str | Path = LM_EVAL_GSM8K) -> list[Scorer]:
    """lm-eval's scorers of a task file: one per filter ensemble, with its ``exact_match`` settings.

    Raises:
        LatentReasonError: the file has no ``exact_match`` metric or a filter other than regex then take_first.
    """
    task = yaml.safe_load(Path(task_file).read_text(encoding="utf-8"))
    metric = next((m for m in task.get("metric_list", []) if m.get("metric") == "exact_match"), None)
    if metric is None:
        raise LatentReasonError(f"Task file {str(task_file)!r} scores no exact_match; it cannot be cross-checked.")
    kwargs = {k: v for k, v in metric.items() if k not in ("metric", "aggregation", "higher_is_better")}
    out = []
    for ensemble in task.get("filter_list", []):
        steps: list[tuple[str, dict[str, Any] | None]] = [
            (step["function"], {k: v for k, v in step.items() if k != "function"}) for step in ensemble["filter"]
        ]
        if [name for name, _ in steps] != ["regex", "take_first"]:
            raise LatentReasonError(
                f"Filter {ensemble['name']!r} of {str(task_file)!r} is not a regex then take_first; it cannot be cross-checked."
            )
        regex = steps[0][1] or {}
        out.append(
            Scorer(
                ensemble["name"],
                re.compile(regex["regex_pattern"]),
                int(regex.get("group_select", 0)),
                steps,
                kwargs,
            )
        )
    return out


@dataclass(frozen=True)
class Disagreement:
    """A generation that lm-eval's filter and this project's extraction read differently.

    Attributes:
        id: the example.
        filter: lm-eval's filter (``strict-match`` or ``flexible-extract``).
        kind: what makes them differ (see :func:`kind_of`).
        gold: the gold answer.
        ours: this project's answer (None: none found).
        lm_eval: what lm-eval's filter kept.
        ours_correct: this project's verdict.
        lm_eval_correct: lm-eval's ``exact_match``.
        excerpt: the generation around what lm-eval read (its end, when it read nothing).
    """

    id: str
    filter: str
    kind: str
    gold: str
    ours: str | None
    lm_eval: str
    ours_correct: bool
    lm_eval_correct: bool
    excerpt: str

    @property
    def right(self) -> str:
        """Whose verdict is right: ``latentreason``, ``lm-eval``, or ``neither`` (both wrong, other answers)."""
        if self.ours_correct != self.lm_eval_correct:
            return "latentreason" if self.ours_correct else "lm-eval"
        return "both" if self.ours_correct else "neither"


@dataclass
class Agreement:
    """How one lm-eval filter and this project's matching answer agree over a run.

    Attributes:
        filter: lm-eval's filter.
        ours: this project's answer it is set against (``strict`` or ``flexible``).
        n: generations compared.
        ours_correct: correct by this project's verdict.
        lm_eval_correct: correct by lm-eval's ``exact_match``.
        same_verdict: both right or both wrong.
        same_answer: the same number read (or nothing by both).
    """

    filter: str
    ours: str
    n: int = 0
    ours_correct: int = 0
    lm_eval_correct: int = 0
    same_verdict: int = 0
    same_answer: int = 0


@dataclass
class CrossCheck:
    """lm-eval's scoring of a run's generations against this project's.

    Attributes:
        agreements: one per lm-eval filter.
        disagreements: every generation read differently, filter by filter.
    """

    agreements: list[Agreement]
    disagreements: list[Disagreement] = field(default_factory=list)

    def kinds(self) -> Counter[tuple[str, str, str]]:
        """Disagreements counted by (filter, kind, whose verdict is right)."""
        return Counter((d.filter, d.kind, d.right) for d in self.disagreements)

    def markdown(self) -> str:
        """The agreement table, the disagreements by kind, then each of them."""
        lines = [
            "| lm-eval filter | latentreason | n | acc latentreason | acc lm-eval | same verdict | same answer |",
            "|---|---|---|---|---|---|---|",
        ]
        for a in self.agreements:
            shares = " | ".join(
                _share(k, a.n) for k in (a.ours_correct, a.lm_eval_correct, a.same_verdict, a.same_answer)
            )
            lines.append(f"| {a.filter} | {a.ours} | {a.n} | {shares} |")
        if not self.disagreements:
            return "\n".join([*lines, "", "No disagreements."])
        lines += ["", "| lm-eval filter | kind | right | count |", "|---|---|---|---|"]
        lines += [f"| {f} | {k} | {r} | {c} |" for (f, k, r), c in sorted(self.kinds().items())]
        lines += ["", "| id | lm-eval filter | kind | gold | latentreason | lm-eval | right | excerpt |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for d in self.disagreements:
            excerpt = d.excerpt.replace("\n", "\\n").replace("|", "\\|")
            lines.append(
                f"| {d.id} | {d.filter} | {d.kind} | {d.gold} | {d.ours} | {d.lm_eval} | {d.right} | `{excerpt}` |"
            )
        return "\n".join(lines)


def _share(k: int, n: int) -> str:
    return f"{k / n:.3f} ({k}/{n})" if n else "-"


def kind_of(
    scorer: Scorer, generation: str, ours: str | None, lm_eval: str, same_value: bool, span: tuple[int, int] | None
) -> str:
    """Why lm-eval's filter and this project's extraction read a generation differently.

    Args:
        scorer: lm-eval's filter.
        generation: the chain.
        ours: this project's answer.
        lm_eval: what the filter kept.
        same_value: both read the same number (so only the comparison differs).
        span: where in the chain lm-eval's match lies (see :meth:`Scorer.span`).

    Returns:
        A short description, the same for every generation of its kind.
    """
    if same_value:
        return "same number, other text: exact_match compares text ('34.00' is not '34'), latentreason values"
    if lm_eval == INVALID:
        if scorer.name == "strict-match":
            return "no 'The answer is N.' sentence: the chain ends with \\boxed{N}, as this project's prompt asks"
        return "lm-eval reads no number"
    if ours is None:
        return "lm-eval reads a number where latentreason finds none"
    box = list(_BOX.finditer(generation))
    start, end = span if span else (len(generation), len(generation))
    if box:
        box_start, box_end = box[-1].span()
        if start >= box_end:
            return "lm-eval reads a number written after the box"
        if start >= box_start:
            content = box[-1].group()
            if "frac" in content or "/" in content:
                return "a fraction in the box: lm-eval reads one of its numbers"
            if re.search(r"[A-Za-z]{2,}", content.replace("boxed", "")):
                return "a unit in the box: lm-eval reads the unit's number"
            return "an expression in the box: lm-eval reads its last number, latentreason its value"
        return "lm-eval reads a number inside the reasoning, before the box"
    before = generation[max(0, start - 2) : start]
    if before.endswith("/") or before.endswith("}{"):
        return "a fraction: lm-eval reads its denominator, latentreason its value"
    if before.endswith("^") or generation[end : end + 1] == "^":
        return "a unit or power: lm-eval reads the exponent or its base"
    return "no box: lm-eval and latentreason read different numbers of the reasoning"


def cross_check(records: list[dict[str, Any]], task_file: str | Path = LM_EVAL_GSM8K) -> CrossCheck:
    """Score a run's generations with lm-eval's filters and metric; compare with this project's scores.

    Args:
        records: a results folder's ``samples.jsonl`` records.
        task_file: the lm-eval task file whose scorers to use (default: its GSM8K chain-of-thought task).

    Returns:
        The agreement per filter and every disagreement.
    """
    check = CrossCheck([])
    for scorer in scorers(task_file):
        ours_key = PAIRS.get(scorer.name, "flexible")
        agreement = Agreement(scorer.name, ours_key)
        for record in records:
            generation, gold, ours = record["generation"], str(record["gold"]), record[ours_key]
            ours_correct = bool(record[f"{ours_key}_correct"])
            read = scorer.read(generation)
            lm_eval_correct = scorer.correct(read, gold)
            value = scorer.normalized(read)
            same_value = ours is not None and read != INVALID and numbers_equal(value, ours)
            same_answer = same_value or (ours is None and read == INVALID)
            agreement.n += 1
            agreement.ours_correct += ours_correct
            agreement.lm_eval_correct += lm_eval_correct
            agreement.same_verdict += ours_correct == lm_eval_correct
            agreement.same_answer += same_answer
            if same_answer and ours_correct == lm_eval_correct:
                continue
            span = scorer.span(generation)
            start, end = span if span else (len(generation), len(generation))
            excerpt = generation[max(0, start - _EXCERPT) : end + _EXCERPT // 3].strip()
            check.disagreements.append(
                Disagreement(
                    str(record["id"]),
                    scorer.name,
                    kind_of(scorer, generation, ours, read, same_value, span),
                    gold,
                    ours,
                    read,
                    ours_correct,
                    lm_eval_correct,
                    excerpt,
                )
            )
        check.agreements.append(agreement)
    return check


def check_folder(folder: str | Path, task_file: str | Path = LM_EVAL_GSM8K) -> list[tuple[Path, CrossCheck]]:
    """:func:`cross_check` for every run under ``folder`` whose gold answers are all numbers.

    A run still being written is read as it is (a torn last line is skipped).

    Returns:
        ``(run folder, check)`` per run, in path order.

    Raises:
        LatentReasonError: no run with numeric answers under ``folder``.
    """
    folder = Path(folder)
    runs = sorted({p.parent for p in folder.rglob("config.yaml") if (p.parent / "samples.jsonl").exists()})
    out = []
    for run in runs:
        records = ResultsFolder(run, load_config(run / "config.yaml"), prepare=False).done()
        if records and all(parse_number(str(r["gold"])) is not None for r in records):
            out.append((run, cross_check(records, task_file)))
    if not out:
        raise LatentReasonError(
            f"No results folder with numeric answers (samples.jsonl and config.yaml) under {str(folder)!r}."
        )
    return out
