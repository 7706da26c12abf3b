"""The task type: a dataset with its prompts and how answers are scored. Built-in tasks live in :mod:`latentreason.builtins.tasks`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentreason.components.example import AnswerType, Example
from latentreason.components.rows import SCHEMA, example_from_row, nonempty, problems_error, repeated_ids
from latentreason.errors import LatentReasonError

#: Environment variable naming a folder of ``<task>/<split>.jsonl`` files,
#: searched when a task's own data folder lacks a split.
DATA_DIR_ENV = "LATENTREASON_DATA_DIR"


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?")


_CALC_BEFORE_RESULT = re.compile(r"<<[^<>]*>>(?=\S)")


_CALC = re.compile(r"<<([^<>]*)>>")


@dataclass(frozen=True)
class HubSource:
    """A task's copy on the Hugging Face hub and how to read it.

    Attributes:
        path: dataset id, e.g. ``"openai/gsm8k"``.
        name: dataset config name, or None.
        splits: the task's split names mapped to the hub's; only these splits
            are read from the hub.
        convert: ``convert(row, fallback_id) -> Example``, or None if the
            rows already follow the project's schema.
    """

    path: str
    name: str | None = None
    splits: dict[str, str] = field(default_factory=dict, hash=False)
    convert: Callable[[dict[str, Any], str], Example] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A reasoning task: its data, its prompt and how answers are scored.

    Data for a split is looked up in this order: :attr:`files`, then
    :attr:`data_dir`, then ``$LATENTREASON_DATA_DIR/<name>/<split>.jsonl``,
    then the hub copy.

    Attributes:
        name: registered task name, also its folder name under
            ``$LATENTREASON_DATA_DIR``.
        description: one line for listings.
        answer_type: ``"number"``, ``"choice"`` or ``"yesno"``.
        evaluator: registered name of the default evaluator.
        instruction: system prompt for the LLM; it asks for step-by-step
            reasoning ending with ``The final answer is \\boxed{X}``.
        instructions: system prompts for other prompt styles
            (``RunConfig.prompt_style``), by style name.
        eval_split: split evaluated by default.
        train_split: split trained on by default, or None if the task has no
            training data.
        data_dir: folder holding ``<split>.jsonl`` files (e.g. the copy
            shipped in the package), or None.
        files: a ``.jsonl`` file per split name (e.g. from a task file).
        hub: the hub copy, or None.
        license: the data's license.
        source: where the data comes from (paper, repository).
        question_template: how a question is shown to the models, with the
            fields ``{question}``, ``{choices}`` (the options on one line) and
            ``{id}``; None for the question, then ``Answer Choices: ..`` when
            it has options.
    """

    name: str
    description: str
    answer_type: AnswerType
    evaluator: str
    instruction: str
    eval_split: str
    train_split: str | None
    data_dir: Path | None = None
    hub: HubSource | None = None
    license: str = "unknown"
    source: str = ""
    instructions: dict[str, str] = field(default_factory=dict, hash=False)
    files: dict[str, Path] = field(default_factory=dict, hash=False)
    question_template: str | None = None

    def instruction_for(self, style: str) -> str:
        """The LLM's system prompt in a prompt style (``"default"``: :attr:`instruction`)."""
        return self.instructions.get(style, self.instruction)

    def format_question(self, ex: Example) -> str:
        """The question as shown to the models, with its options if any.

        Args:
            ex: the example.

        Returns:
            :attr:`question_template` filled in; without one, the question,
            and for multiple choice a second line ``Answer Choices: A) .. B) ..``.
        """
        if self.question_template is not None:
            return self.question_template.format(question=ex.question, choices=" ".join(ex.choices), id=ex.id)
        if not ex.choices:
            return ex.question
        return f"{ex.question}\nAnswer Choices: {' '.join(ex.choices)}"

    def target_text(self, ex: Example) -> str:
        """The supervised training target: gold rationale, then the final answer.

        GSM8K-style calculator annotations are cleaned: ``= <<4*2=8>>8`` loses
        the annotation, and an annotation not followed by its result (as in
        ASDiv-Aug) keeps only the calculation.

        Args:
            ex: the example.

        Returns:
            ``"<rationale>\\nThe final answer is \\boxed{<answer>}."``, or just
            that sentence if the example has no rationale.
        """
        final = f"The final answer is \\boxed{{{ex.answer}}}."
        rationale = _CALC.sub(r"\1", _CALC_BEFORE_RESULT.sub("", ex.rationale or "")).strip()
        return f"{rationale}\n{final}" if rationale else final

    def splits(self) -> list[str]:
        """Every split that can be loaded without an explicit source."""
        found = set(self.hub.splits) if self.hub else set()
        found.update(self.files)
        for folder in self._folders():
            found.update(p.stem for p in folder.glob("*.jsonl"))
        return sorted(found)

    def load(
        self,
        split: str | None = None,
        source: str | os.PathLike[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Example]:
        """Load examples of one split, in file order.

        Args:
            split: split name; None means :attr:`eval_split`. Not used when
                ``source`` is a ``.jsonl`` file.
            source: None for the task's own data (see the class docstring); a
                ``.jsonl`` file; a folder holding ``<split>.jsonl`` (or
                ``<name>/<split>.jsonl``); or a hub dataset id ``owner/name``,
                optionally ``owner/name:config`` (the task's own hub id gets
                its config and split names; other ids must have our schema or
                columns the task's converter reads).
            limit: keep at most this many examples, or None for all.
            offset: skip this many examples first.

        Returns:
            The examples, at least one.

        Raises:
            LatentReasonError: unknown split, missing file, unreachable hub,
                malformed or invalid rows, or no examples left.
        """
        split = split or self.eval_split
        if (limit is not None and limit <= 0) or offset < 0:
            raise LatentReasonError(
                f"limit must be positive and offset not negative (got limit={limit}, offset={offset})."
            )
        stop = None if limit is None else offset + limit
        if source is None:
            return self._load_default(split, offset, stop)
        text = os.fspath(source)
        path = Path(text).expanduser()
        if path.is_file():
            return self._load_file(path, offset, stop)
        if path.is_dir():
            return self._load_file(self._file_in_folder(path, split), offset, stop)
        if HUB_ID.fullmatch(text) and not text.endswith((".jsonl", ".json")):
            dataset_id, _, config = text.partition(":")
            hub_split = split
            if self.hub is not None and dataset_id == self.hub.path:
                config = config or self.hub.name or ""
                hub_split = self.hub.splits.get(split, split)
            hint = "Give a local .jsonl file or folder as the data source instead."
            return self._load_hub(dataset_id, config or None, hub_split, split, offset, stop, hint)
        raise LatentReasonError(
            f"Data source {text!r} does not exist. Give a .jsonl file, a folder holding "
            f"<split>.jsonl files, or a Hugging Face dataset id such as 'openai/gsm8k'."
        )

    def _folders(self) -> list[Path]:
        folders = [self.data_dir] if self.data_dir is not None else []
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        if env:
            folders.append(Path(env).expanduser() / self.name)
        return [f for f in folders if f.is_dir()]

    def _where_looked(self, split: str) -> str:
        places = [str(self.data_dir / f"{split}.jsonl")] if self.data_dir is not None else []
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        places.append(str(Path(env) / self.name / f"{split}.jsonl") if env else f"${DATA_DIR_ENV} (not set)")
        return ", ".join(places)

    def _load_default(self, split: str, start: int, stop: int | None) -> list[Example]:
        if split in self.files:
            return self._load_file(self.files[split], start, stop)
        for folder in self._folders():
            path = folder / f"{split}.jsonl"
            if path.is_file():
                return self._load_file(path, start, stop)
        if self.hub is not None and split in self.hub.splits:
            hint = (
                f"No local file was found (looked in {self._where_looked(split)}). Give a local .jsonl file "
                f"or folder as the data source, or set {DATA_DIR_ENV} to a folder of <task>/<split>.jsonl files."
            )
            return self._load_hub(self.hub.path, self.hub.name, self.hub.splits[split], split, start, stop, hint)
        raise LatentReasonError(
            f"Task {self.name!r} has no split {split!r}. Available splits: "
            f"{', '.join(self.splits()) or '(none)'}. Looked for a file in {self._where_looked(split)}."
        )

    def _file_in_folder(self, folder: Path, split: str) -> Path:
        for candidate in (folder / f"{split}.jsonl", folder / self.name / f"{split}.jsonl"):
            if candidate.is_file():
                return candidate
        present = sorted(p.stem for p in folder.glob("*.jsonl")) or sorted(
            p.stem for p in (folder / self.name).glob("*.jsonl")
        )
        has = f"It has the splits: {', '.join(present)}." if present else "It holds no .jsonl files."
        raise LatentReasonError(f"Folder {str(folder)!r} has no {split}.jsonl (nor {self.name}/{split}.jsonl). {has}")

    def _load_file(self, path: Path, start: int, stop: int | None) -> list[Example]:
        examples: list[Example] = []
        numbers: list[int] = []
        problems: list[str] = []
        try:
            with path.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        problems.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
                        continue
                    except ValueError as exc:  # e.g. an integer of more than 4300 digits
                        problems.append(f"line {number}: not valid JSON ({exc})")
                        continue
                    example, found = example_from_row(row, self.answer_type)
                    if found:
                        problems.append(f"line {number}: {', '.join(found)}")
                    if example is not None:
                        examples.append(example)
                        numbers.append(number)
        except UnicodeDecodeError as exc:
            raise LatentReasonError(
                f"File {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})."
            ) from exc
        except OSError as exc:
            raise LatentReasonError(f"Cannot read {str(path)!r}: {exc.strerror or exc}.") from exc
        problems += repeated_ids(examples, numbers, "line")
        if problems:
            raise problems_error(f"file {str(path)!r}", problems, SCHEMA)
        return nonempty(examples[start:stop], len(examples), start, f"file {str(path)!r}")

    def _load_hub(
        self,
        dataset_id: str,
        config: str | None,
        hub_split: str,
        split: str,
        start: int,
        stop: int | None,
        local_hint: str,
    ) -> list[Example]:
        import datasets

        where = f"hub dataset {dataset_id!r}" + (f" (config {config!r})" if config else "") + f", split {hub_split!r}"
        try:
            data = datasets.load_dataset(dataset_id, config, split=hub_split)
        except ConnectionError as exc:
            raise LatentReasonError(
                f"Could not reach the Hugging Face hub to load {where} ({exc}). {local_hint}"
            ) from exc
        except Exception as exc:  # any failure of the hub or the datasets library is the user's to fix
            raise LatentReasonError(f"Could not load {where}: {exc}. {local_hint}") from exc
        total = len(data)
        rows = data.select(range(min(start, total), total if stop is None else min(stop, total)))
        ours = {"id", "question", "answer"} <= set(data.column_names)
        convert = self.hub.convert if self.hub is not None and not ours else None
        if not ours and convert is None:
            raise LatentReasonError(
                f"The rows of {where} do not follow the project's schema (columns: "
                f"{', '.join(data.column_names)}), and task {self.name!r} has no converter for them. {SCHEMA}"
            )
        examples: list[Example] = []
        problems: list[str] = []
        for index, row in enumerate(rows, start):
            if convert is not None:
                try:
                    examples.append(convert(row, f"{self.name}-{split}-{index}"))
                except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                    problems.append(f"row {index}: cannot convert ({type(exc).__name__}: {exc})")
                continue
            example, found = example_from_row(row, self.answer_type)
            if found:
                problems.append(f"row {index}: {', '.join(found)}")
            if example is not None:
                examples.append(example)
        if not problems:
            problems = repeated_ids(examples, list(range(start, start + len(examples))), "row")
        if problems:
            raise problems_error(where, problems, f"Its columns are: {', '.join(data.column_names)}.")
        return nonempty(examples, total, start, where)
