"""Task and example types. Built-in tasks live in :mod:`latentreason.tasks`."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from latentreason.errors import LatentReasonError

AnswerType = Literal["number", "choice", "yesno"]


@dataclass(frozen=True)
class Example:
    """One problem, in the schema of the project's JSONL files.

    Attributes:
        id: stable id, unique within the dataset.
        question: the problem text (options not included).
        answer: gold final answer (a number, an option letter, or Yes/No).
        choices: ``("A) ...", "B) ...")`` for multiple choice, else empty.
        rationale: gold worked solution, where the source has one.
        meta: source-specific extras.
    """

    id: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    rationale: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


#: Environment variable naming a folder of ``<task>/<split>.jsonl`` files,
#: searched when a task's own data folder lacks a split.
DATA_DIR_ENV = "LATENTREASON_DATA_DIR"

_MAX_PROBLEMS = 5
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?")
_LETTER_PREFIX = re.compile(r"\s*\(?([A-Z])\)\s*")
_CALC_BEFORE_RESULT = re.compile(r"<<[^<>]*>>(?=\S)")
_CALC = re.compile(r"<<([^<>]*)>>")
_SCHEMA = (
    "Each line must be a JSON object with the fields id (string), question (string) and "
    "answer (string; a number, an option letter or Yes/No), and optionally choices "
    '(list of strings like "A) 12"), rationale (string) and meta (object).'
)


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

    Data for a split is looked up in this order: :attr:`data_dir`, then
    ``$LATENTREASON_DATA_DIR/<name>/<split>.jsonl``, then the hub copy.

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
        hub: the hub copy, or None.
        license: the data's license.
        source: where the data comes from (paper, repository).
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

    def instruction_for(self, style: str) -> str:
        """The LLM's system prompt in a prompt style (``"default"``: :attr:`instruction`)."""
        return self.instructions.get(style, self.instruction)

    def format_question(self, ex: Example) -> str:
        """The question as shown to the models, with its options if any.

        Args:
            ex: the example.

        Returns:
            The question, and for multiple choice a second line
            ``Answer Choices: A) .. B) ..``.
        """
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
        if _HUB_ID.fullmatch(text) and not text.endswith((".jsonl", ".json")):
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
                    example, found = _example_from_row(row, self.answer_type)
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
        problems += _repeated_ids(examples, numbers, "line")
        if problems:
            raise _problems_error(f"file {str(path)!r}", problems, _SCHEMA)
        return _nonempty(examples[start:stop], len(examples), start, f"file {str(path)!r}")

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
                f"{', '.join(data.column_names)}), and task {self.name!r} has no converter for them. {_SCHEMA}"
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
            example, found = _example_from_row(row, self.answer_type)
            if found:
                problems.append(f"row {index}: {', '.join(found)}")
            if example is not None:
                examples.append(example)
        if not problems:
            problems = _repeated_ids(examples, list(range(start, start + len(examples))), "row")
        if problems:
            raise _problems_error(where, problems, f"Its columns are: {', '.join(data.column_names)}.")
        return _nonempty(examples, total, start, where)


def _nonempty(chosen: list[Example], total: int, offset: int, where: str) -> list[Example]:
    if total == 0:
        raise LatentReasonError(f"There are no examples in {where}. Choose another split or data source.")
    if not chosen:
        raise LatentReasonError(f"Offset {offset} is past the end of {where}, which has {total} examples.")
    return chosen


def _repeated_ids(examples: list[Example], numbers: list[int], unit: str) -> list[str]:
    """One problem per example whose id an earlier one already has (results are kept by id).

    Args:
        examples: the loaded examples.
        numbers: the line or row number of each.
        unit: ``"line"`` or ``"row"``, for the messages.
    """
    first: dict[str, int] = {}
    problems = []
    for example, number in zip(examples, numbers):
        earlier = first.setdefault(example.id, number)
        if earlier != number:
            problems.append(f"{unit} {number}: id {example.id!r} is already used on {unit} {earlier}")
    return problems


def _problems_error(where: str, problems: list[str], hint: str) -> LatentReasonError:
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
    return LatentReasonError(f"Found {len(problems)} invalid row(s) in {where}: {shown}{more}. {hint}")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _text_field(value: Any, key: str, problems: list[str], *, numbers: bool = False) -> str | None:
    if value is None:
        problems.append(f"missing field {key!r}")
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if numbers and isinstance(value, float):
        if not math.isfinite(value):
            problems.append(f"field {key!r} must be a finite number, not {value}")
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if not isinstance(value, str):
        problems.append(f"field {key!r} must be a string, not {_json_type(value)}")
        return None
    if not value.strip():
        problems.append(f"field {key!r} is empty")
        return None
    return value


def _choices_field(value: Any, problems: list[str]) -> tuple[str, ...] | None:
    """Options normalised to ``"A) text"``; None (with a problem) if ill-typed."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        problems.append(f"field 'choices' must be a list of non-empty strings, not {_json_type(value)}")
        return None
    choices = []
    for index, choice in enumerate(value):
        prefix = _LETTER_PREFIX.match(choice)
        letter, text = (prefix[1], choice[prefix.end() :]) if prefix else (chr(ord("A") + index), choice)
        choices.append(f"{letter}) {text.strip()}")
    letters = [c[0] for c in choices]
    if len(set(letters)) < len(letters) or not all("A" <= letter <= "Z" for letter in letters):
        problems.append(f"field 'choices' must give each option its own letter A-Z (got {', '.join(letters)})")
        return None
    return tuple(choices)


def _typed_answer(answer: str, answer_type: AnswerType, choices: Iterable[str], problems: list[str]) -> str | None:
    """The answer checked against, and normalised for, the answer type."""
    answer = answer.strip()
    if answer_type == "choice":
        letters = [c[0] for c in choices]
        if not letters:
            problems.append("missing field 'choices' (needed for a multiple-choice task)")
        elif answer.upper() not in letters:
            problems.append(f"answer {answer!r} is not one of the option letters {', '.join(letters)}")
        else:
            return answer.upper()
        return None
    if answer_type == "yesno":
        if answer.casefold() not in ("yes", "no"):
            problems.append(f"answer {answer!r} is not Yes or No")
            return None
        return answer.capitalize()
    return answer


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string that is not valid Unicode text (it cannot be written as UTF-8)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _example_from_row(row: Any, answer_type: AnswerType) -> tuple[Example | None, list[str]]:
    """Validate one row of the project's schema and build its :class:`Example`.

    Args:
        row: the parsed JSON value.
        answer_type: the task's answer type, which the answer must fit.

    Returns:
        The example (None if the row is invalid) and the problems found.
    """
    if not isinstance(row, dict):
        return None, [f"expected a JSON object, not {_json_type(row)}"]
    if _has_lone_surrogate(row):
        return None, ["a string holds an unpaired surrogate escape such as \\ud800, which encodes no character"]
    problems: list[str] = []
    ident = _text_field(row.get("id"), "id", problems, numbers=True)
    question = _text_field(row.get("question"), "question", problems)
    raw_answer = row.get("answer")
    if isinstance(raw_answer, bool) and answer_type == "yesno":
        raw_answer = "Yes" if raw_answer else "No"
    answer = _text_field(raw_answer, "answer", problems, numbers=True)
    choices = _choices_field(row.get("choices"), problems)
    if answer is not None and choices is not None:
        answer = _typed_answer(answer, answer_type, choices, problems)
    rationale = row.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        problems.append(f"field 'rationale' must be a string, not {_json_type(rationale)}")
    meta = row.get("meta")
    if meta is not None and not isinstance(meta, dict):
        problems.append(f"field 'meta' must be an object, not {_json_type(meta)}")
    if problems or ident is None or question is None or answer is None or choices is None:
        return None, problems
    return Example(
        id=ident, question=question, answer=answer, choices=choices, rationale=rationale, meta=meta or {}
    ), []
