"""Tasks written as YAML files, without Python: each file becomes the same :class:`TaskSpec` a plugin registers.

A task file names its data (JSONL files per split, a folder of
``<split>.jsonl`` files, or a hub dataset in the project's row schema), its
splits, answer type, prompts and evaluator; paths are relative to the file.
``--task path/to/task.yaml`` runs one; the files of the folder named by
``$LATENTREASON_TASKS_DIR`` are registered by name (see :class:`TaskFolder`).
Every problem of a file is reported at once, before any model loads.
"""

from __future__ import annotations

import os
import string
from collections.abc import Collection
from contextlib import suppress
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from latentreason.components.example import AnswerType
from latentreason.components.task import HUB_ID, HubSource, TaskSpec
from latentreason.config import Strict, format_validation_error, read_yaml
from latentreason.errors import ConfigError, LatentReasonError, unknown_name
from latentreason.hooks.specs import hookimpl

TASKS_DIR_ENV = "LATENTREASON_TASKS_DIR"
"""Environment variable naming a folder whose ``*.yaml`` task files are registered as tasks, by file name."""

SUFFIXES = (".yaml", ".yml")

TEMPLATE_FIELDS = ("question", "choices", "id")
"""The fields a ``question_template`` may use."""


class TaskData(Strict):
    """Where a task file's examples are; give one or more of these."""

    files: dict[str, str] = Field(default_factory=dict, description="a .jsonl file per split, e.g. {test: test.jsonl}")
    folder: str | None = Field(None, description="a folder holding <split>.jsonl files")
    hub: str | None = Field(None, description="a hub dataset id, owner/name or owner/name:config, in the row schema")
    hub_splits: dict[str, str] = Field(
        default_factory=dict, description="the task's split names mapped to the hub's (default: the same names)"
    )


class TaskFile(Strict):
    """The fields of a task file (see ``docs/tasks.md``)."""

    name: str | None = Field(None, description="the task's name (default: the file name without .yaml)")
    description: str = ""
    answer_type: AnswerType
    evaluator: str | None = Field(None, description="registered evaluator (default: the one named like answer_type)")
    instruction: str = Field(description="system prompt; it asks for reasoning ending in \\boxed{X}")
    instructions: dict[str, str] = Field(default_factory=dict, description="system prompts of other prompt styles")
    question_template: str | None = Field(None, description="the question as shown, from {question}, {choices}, {id}")
    data: TaskData
    eval_split: str = "test"
    train_split: str | None = None
    license: str = "unknown"
    source: str = ""


def is_task_file(name: str) -> bool:
    """Whether a ``data.task`` value names a task file rather than a registered task."""
    return name.endswith(SUFFIXES)


def _template_problems(template: str) -> list[str]:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return [f"question_template: {exc} (write a literal brace as {{{{ or }}}})"]
    return [
        f"question_template: unknown field {{{name}}} (the fields are: {', '.join(f'{{{f}}}' for f in TEMPLATE_FIELDS)})"
        for name in fields
        if name not in TEMPLATE_FIELDS
    ]


def _data_problems(data: TaskData, root: Path) -> tuple[list[str], set[str]]:
    """Problems of a file's ``data`` section, and the split names it provides."""
    problems, splits = [], set()
    if not (data.files or data.folder or data.hub):
        problems.append("data: give files (a .jsonl per split), a folder of <split>.jsonl files, or a hub dataset id")
    for split, file in data.files.items():
        if not (root / file).is_file():
            problems.append(f"data.files.{split}: file {str(root / file)!r} does not exist")
        splits.add(split)
    if data.folder is not None:
        folder = root / data.folder
        if folder.is_dir():
            found = {p.stem for p in folder.glob("*.jsonl")}
            splits |= found
            if not found:
                problems.append(f"data.folder: folder {str(folder)!r} holds no <split>.jsonl files")
        else:
            problems.append(f"data.folder: folder {str(folder)!r} does not exist")
    if data.hub is not None:
        if HUB_ID.fullmatch(data.hub):
            splits |= set(data.hub_splits)
        else:
            problems.append(f"data.hub: {data.hub!r} is no hub dataset id (owner/name or owner/name:config)")
    elif data.hub_splits:
        problems.append("data.hub_splits: given without data.hub")
    return problems, splits


def load_task_file(path: str | os.PathLike[str], evaluators: Collection[str] | None = None) -> TaskSpec:
    """Read a task file into a :class:`TaskSpec`.

    Args:
        path: the YAML file.
        evaluators: the registered evaluators, to check the file's against
            (None: checked when a run resolves it).

    Returns:
        The task; its evaluator is a name, looked up when a run resolves it.

    Raises:
        ConfigError: every problem of the file at once (unknown keys or
            answer type, missing files, unknown splits, bad template fields).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise LatentReasonError(f"Task file {str(path)!r} does not exist.")
    raw: dict[str, Any] = read_yaml(path)
    where = f"task file {str(path)!r}"
    try:
        spec = TaskFile.model_validate(raw)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        data = raw.get("data")
        if isinstance(data, dict):
            with suppress(ValidationError):  # reported above
                problems += _data_problems(TaskData.model_validate(data), path.parent)[0]
        template = raw.get("question_template")
        problems += _template_problems(template) if isinstance(template, str) else []
        raise ConfigError(problems, source=where) from None
    problems, splits = _data_problems(spec.data, path.parent)
    evaluator = spec.evaluator or spec.answer_type
    if evaluators is not None and evaluator not in evaluators:
        problems.append(f"evaluator: {unknown_name('evaluator', evaluator, evaluators)}")
    if spec.question_template is not None:
        problems += _template_problems(spec.question_template)
    hub_splits = spec.data.hub_splits or {s: s for s in (spec.eval_split, spec.train_split) if s}
    if spec.data.hub is not None:
        splits |= set(hub_splits)
    for key, split in (("eval_split", spec.eval_split), ("train_split", spec.train_split)):
        if split is not None and splits and split not in splits:
            problems.append(f"{key}: the data has no split {split!r} (it has: {', '.join(sorted(splits))})")
    if problems:
        raise ConfigError(problems, source=where)
    hub = None
    if spec.data.hub is not None:
        dataset, _, config = spec.data.hub.partition(":")
        hub = HubSource(dataset, config or None, hub_splits)
    return TaskSpec(
        name=spec.name or path.stem,
        description=spec.description or f"task file {path.name}",
        answer_type=spec.answer_type,
        evaluator=evaluator,
        instruction=spec.instruction,
        instructions=spec.instructions,
        eval_split=spec.eval_split,
        train_split=spec.train_split,
        data_dir=path.parent / spec.data.folder if spec.data.folder is not None else None,
        files={split: path.parent / file for split, file in spec.data.files.items()},
        hub=hub,
        license=spec.license,
        source=spec.source or str(path),
        question_template=spec.question_template,
    )


class TaskFolder:
    """A plugin registering the task files of a folder (``$LATENTREASON_TASKS_DIR``), named by file.

    Args:
        folder: the folder.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def latentreason_tasks(self) -> dict[str, TaskSpec]:
        """Every task file of the folder, by name.

        Raises:
            ConfigError: every problem of every file, at once.
        """
        if not self.folder.is_dir():
            raise LatentReasonError(f"${TASKS_DIR_ENV} names {str(self.folder)!r}, which is not a folder.")
        tasks, problems = {}, []
        for path in sorted(p for p in self.folder.iterdir() if p.suffix in SUFFIXES):
            try:
                task = load_task_file(path)
            except ConfigError as exc:
                problems += [f"{path.name}: {problem}" for problem in exc.problems]
                continue
            except LatentReasonError as exc:
                problems.append(f"{path.name}: {exc}")
                continue
            tasks[task.name] = task
        if problems:
            raise ConfigError(problems, source=f"the task files in ${TASKS_DIR_ENV} ({self.folder})")
        return tasks
