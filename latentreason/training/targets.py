"""Self-distilled training targets: the LLM's own correct chains, as a data file with its provenance.

A targets file (written by ``latentreason distill``, see
:mod:`latentreason.training.distill`) is JSONL. Its first line is the header
``{"latentreason_targets": 1, "provenance": {...}}``: the LLM (its name as
resolved and the SHA-256 of its ``config.json``), the prompt (task, prompt
style, system instruction, question template, producer), the generation
settings, the seed, the date and the counts. Every other line is one kept
chain::

    {"id": ..., "question": ..., "answer": ..., "target": <the chain>, "from": "greedy" | "sample", "try": k}

``train.targets`` names such a file: :func:`load_targets` checks it against the
run before any model loads (the same LLM, the same prompt, rows that are the
task's training problems), and the trainer then supervises each training row
with its chain instead of the gold rationale and answer
(docs/self-distillation.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentreason.components.example import Example
from latentreason.components.task import TaskSpec
from latentreason.config import RunConfig
from latentreason.errors import LatentReasonError
from latentreason.models.loading import resolve_name
from latentreason.models.zoo import model_dir
from latentreason.storage import atomic_write, file_digest

FORMAT = 1
"""The version of the targets file layout (the header's ``latentreason_targets``)."""

MAKE = "make one with `latentreason distill` (docs/self-distillation.md)"


def llm_identity(name: str) -> dict[str, str | None]:
    """Which LLM ``name`` is, without loading it: the resolved name and the SHA-256 of its ``config.json``.

    The name is the absolute folder for a local model, else the alias or hub
    id. The hash is None where no ``config.json`` is on disk (a hub model, a
    ``.gguf`` file, an alias not fetched yet).
    """
    source = resolve_name(name)
    folder = {"folder": Path(source.location), "alias": model_dir(source.location)}.get(source.kind)
    config = folder / "config.json" if folder is not None else None
    return {
        "llm": source.location,
        "llm_config_sha256": file_digest(config) if config is not None and config.is_file() else None,
    }


def prompt_identity(config: RunConfig, task: TaskSpec) -> dict[str, str | None]:
    """What of the LLM's prompt a chain depends on and every method of the run shares: task, style, instruction, template."""
    return {
        "task": task.name,
        "prompt_style": config.prompt_style,
        "instruction": task.instruction_for(config.prompt_style),
        "question_template": task.question_template,
    }


@dataclass(frozen=True)
class TargetsFile:
    """A targets file, read.

    Attributes:
        path: the file.
        provenance: its header's provenance.
        rows: the kept chains by example id (each row as written).
    """

    path: Path
    provenance: dict[str, Any]
    rows: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, path: str | Path) -> TargetsFile:
        """Read a targets file.

        Raises:
            LatentReasonError: the file is missing, or is not a targets file
                (no header, a malformed line, a row without its fields, an id twice).
        """
        path = Path(path)
        if not path.is_file():
            raise LatentReasonError(f"Targets file {str(path)!r} (train.targets) does not exist; {MAKE}.")
        parsed: list[tuple[int, Any]] = []  # (line number, value) of each non-blank line
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            try:
                parsed += [(number, json.loads(line))] if line.strip() else []
            except json.JSONDecodeError as exc:
                raise LatentReasonError(
                    f"{str(path)!r} is not a targets file: line {number} is not JSON ({exc.msg}); {MAKE}."
                ) from None
        header = parsed[0][1] if parsed else {}
        if (
            not isinstance(header, dict)
            or header.get("latentreason_targets") != FORMAT
            or not isinstance(header.get("provenance"), dict)
        ):
            raise LatentReasonError(
                f"{str(path)!r} is not a targets file of this version: its first line must be the header "
                f'{{"latentreason_targets": {FORMAT}, "provenance": ...}}; {MAKE}.'
            )
        rows: dict[str, dict[str, Any]] = {}
        for number, row in parsed[1:]:
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("id", "question", "target")):
                raise LatentReasonError(
                    f"{str(path)!r} line {number} is not a targets row (id, question and target, strings)."
                )
            if row["id"] in rows:
                raise LatentReasonError(f"{str(path)!r} line {number}: id {row['id']!r} is there twice.")
            rows[row["id"]] = row
        return cls(path, header["provenance"], rows)

    def check(self, config: RunConfig, task: TaskSpec, problems: list[Example]) -> None:
        """Refuse a file made with another LLM or prompt than ``config``'s, or whose rows are not ``problems``.

        Args:
            config: the training run's config.
            task: its task.
            problems: the task's training problems (the whole training split).

        Raises:
            LatentReasonError: one error per kind of mismatch, naming both sides.
        """
        where = f"Targets file {str(self.path)!r}"
        made, mine = self.provenance, llm_identity(config.models.llm)
        hashes = made.get("llm_config_sha256"), mine["llm_config_sha256"]  # compared where both are on disk
        if made.get("llm") != mine["llm"] or (None not in hashes and hashes[0] != hashes[1]):
            raise LatentReasonError(
                f"{where} was made with the LLM {made.get('llm')!r} (config.json sha256 {made.get('llm_config_sha256')}) "
                f"and this run trains {mine['llm']!r} (sha256 {mine['llm_config_sha256']}): its chains are another "
                f"model's. Train with models.llm={made.get('llm')!r}, or distill this LLM's own chains."
            )
        prompt = prompt_identity(config, task)
        differ = [k for k, v in prompt.items() if made.get(k) != v]
        if differ:
            shown = "; ".join(f"{k}: {made.get(k)!r} there, {prompt[k]!r} here" for k in differ)
            raise LatentReasonError(
                f"{where} was made with another prompt than this run's ({shown}): its chains answer another "
                "instruction. Distill again with this run's task and prompt_style."
            )
        by_id = {ex.id: ex for ex in problems}
        wrong = [
            f"{i!r} ({'not a training problem' if i not in by_id else 'another question or answer'})"
            for i, row in self.rows.items()
            if i not in by_id or (by_id[i].question, by_id[i].answer) != (row["question"], row.get("answer"))
        ]
        if wrong:
            raise LatentReasonError(
                f"{where} has {len(wrong)} row(s) that are not {task.name}'s training problems "
                f"(data source: {config.data.source or 'its own'}): {', '.join(wrong[:5])}"
                f"{' ...' if len(wrong) > 5 else ''}. Distill from the same task, split and data source."
            )


@dataclass(frozen=True)
class TargetsUse:
    """How a training used a targets file.

    Attributes:
        path: the file.
        kept: training rows supervised with their distilled chain.
        skipped: training rows without a kept chain, left out of the training.
    """

    path: Path
    kept: int
    skipped: int

    def text(self) -> str:
        """One line for the command line."""
        return (
            f"targets: {self.kept} training rows on their self-distilled chain from {self.path}, "
            f"{self.skipped} without one skipped; validation on the gold rationale"
        )


def select(targets: TargetsFile, examples: list[Example]) -> tuple[list[Example], TargetsUse]:
    """The training examples that have a chain in ``targets``, and the counts.

    Raises:
        LatentReasonError: none of them has one.
    """
    kept = [ex for ex in examples if ex.id in targets.rows]
    if not kept:
        raise LatentReasonError(
            f"None of the {len(examples)} training rows (from {examples[0].id!r}) has a chain in "
            f"{str(targets.path)!r}, which holds {len(targets.rows)}; distill the rows this training reads "
            "(train.val_limit onwards, train.limit of them)."
        )
    return kept, TargetsUse(targets.path, len(kept), len(examples) - len(kept))


def write_targets(path: str | Path, provenance: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Write a targets file atomically: the header, then one row per kept chain."""
    header = {"latentreason_targets": FORMAT, "provenance": provenance}
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [header, *rows])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_targets(config: RunConfig, task: TaskSpec) -> TargetsFile:
    """The targets file ``config.train.targets`` names, checked against the run (see :meth:`TargetsFile.check`).

    Reads the task's training split, and no model.
    """
    assert config.train.targets is not None
    targets = TargetsFile.read(config.train.targets)
    split = config.train.split or task.train_split
    targets.check(config, task, task.load(split, config.data.source) if split else [])
    return targets
