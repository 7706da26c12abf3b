"""Turn a :class:`RunConfig` into validated component classes and options.

Every problem (unknown names, bad options of any component) is collected and
reported in one :class:`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError

from latentreason.assembly.registry import Registry
from latentreason.components.task_file import is_task_file, load_task_file
from latentreason.config import (
    Component,
    PluginOptions,
    RunConfig,
    format_validation_error,
    load_config,
    merge,
    read_yaml,
)
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.models.quantization import check_int8
from latentreason.models.runtime import resolve_device, resolve_dtype
from latentreason.models.vllm_env import vllm_python
from latentreason.storage import foreign_adapter, read_meta

if TYPE_CHECKING:
    from latentreason.components.example import Example
    from latentreason.components.task import TaskSpec


@dataclass(frozen=True)
class Choice:
    """A component class with its validated options.

    Attributes:
        name: its registered name.
        cls: the class.
        options: its validated options.
        origin: the plugin that registers it, in words (see :meth:`Registry.origin`).
    """

    name: str
    cls: Any
    options: PluginOptions
    origin: str = ""


class HeldBack(NamedTuple):
    """Held-back training examples and where they start: rows ``offset`` onwards of ``split``."""

    split: str
    offset: int
    examples: list[Example]


@dataclass(frozen=True)
class Plan:
    """A run's components, resolved and validated.

    Attributes:
        config: the run config.
        task: the task spec.
        producer, projector, injector, evaluator: the chosen components.
        decoder: the decoding controller, if any.
        dtype_reason: why ``config.models.dtype`` is what it is (``auto`` resolved here, see :func:`concrete_models`).
    """

    config: RunConfig
    task: TaskSpec
    producer: Choice
    projector: Choice
    injector: Choice
    evaluator: Choice
    decoder: Choice | None = None
    dtype_reason: str = "as configured"

    def examples(self) -> list[Example]:
        """The examples ``config.data`` selects (read and checked now; no model is needed)."""
        data = self.config.data
        return self.task.load(data.split, data.source, data.limit, data.offset)

    def held_back(self) -> HeldBack:
        """The held-back training examples ``config.audit`` selects (see :class:`~latentreason.config.AuditConfig`).

        Raises:
            LatentReasonError: the rows would be the evaluation split, the task
                has no training split, or the default offset is undefined
                (``train.limit`` unset: training reads the whole split).
        """
        config, task = self.config, self.task
        train = config.train
        training_split = train.split or task.train_split
        split = config.audit.split or training_split
        if split is None:
            raise LatentReasonError(
                f"Task {task.name!r} has no training split to hold questions back from; name one with audit.split."
            )
        if split == task.eval_split:
            raise LatentReasonError(
                f"audit.split {split!r} is {task.name}'s evaluation split: the thought audit and the mean-thoughts "
                "ablation read held-back training questions only, never test data."
            )
        offset = config.audit.offset
        if offset is None and split != training_split:
            offset = 0
        if offset is None:
            if train.limit is None:
                raise LatentReasonError(
                    "train.limit is unset (training reads the whole training split), so no rows after it are held "
                    "back; name the held-back rows with audit.offset (and audit.split)."
                )
            offset = (train.val_limit if train.val_split in (None, training_split) else 0) + train.limit
        return HeldBack(split, offset, task.load(split, config.data.source, config.audit.limit, offset))

    def checked_examples(self) -> list[Example]:
        """The examples ``config.data`` selects, after checking everything a run needs that needs no model.

        That is its data, the held-back rows ``thoughts_from: mean`` reads, and its checkpoint files.

        Returns:
            The examples.

        Raises:
            ConfigError: a data problem and every unreadable checkpoint, at once.
        """
        problems, examples = [], []
        try:
            examples = self.examples()
        except LatentReasonError as exc:
            problems.append(str(exc))
        if self.config.thoughts_from == "mean":
            try:
                self.held_back()
            except LatentReasonError as exc:
                problems.append(f"thoughts_from: mean: {exc}")
        problems += self.checkpoint_problems()
        if problems:
            raise ConfigError(problems, source=f"the run on {self.task.name}")
        return examples

    def checkpoint_problems(self) -> list[str]:
        """Why the checkpoint files cannot serve this run (empty if they can): unreadable, or an adapter of another LLM."""
        problems = []
        for path in self.config.checkpoints():
            try:
                read_meta(path)
                foreign = foreign_adapter(path, self.config.models.llm)
            except LatentReasonError as exc:
                problems.append(str(exc))
            else:
                problems.extend([foreign] if foreign else [])
        return problems


def concrete_models(config: RunConfig, problems: list[str]) -> tuple[RunConfig, str]:
    """``config`` with ``models.dtype: auto`` resolved for this machine, and why; problems of ``models.quantize`` appended.

    This is the one place the dtype is decided; the results folder then
    records the dtype the run really used.
    """
    models = config.models
    device = resolve_device(models.device)
    dtype, reason = resolve_dtype(models.dtype, device)
    if models.quantize == "int8":
        problems.extend(check_int8(device, "float32" if models.dtype == "auto" else dtype))
        dtype = "float32"
        reason = "int8 decoding keeps float32 outside its int8 layers"
        if config.adapter is not None and config.adapter.merge:
            problems.append(
                "adapter.merge folds the adapter into the float weights, but models.quantize: int8 decodes with int8 "
                "copies made at load; set adapter.merge: false (the adapter then runs beside the int8 layers, in float32)"
            )
    return config.model_copy(update={"models": models.model_copy(update={"dtype": dtype})}), reason


def vllm_problems(config: RunConfig) -> list[str]:
    """Why ``generation.engine: vllm`` cannot run this config (empty if it can)."""
    problems = []
    if config.decoder is not None:
        problems.append(
            f"generation.engine: vllm cannot run decoder {config.decoder.name!r}: a decoding controller runs at every "
            "step (it may choose the LLM's next input and rewrite the KV cache), and vLLM has no per-step hook; "
            "use the transformers engine"
        )
    if config.models.quantize != "none":
        problems.append(
            "models.quantize applies to the transformers engine; vLLM runs its own kernels (set quantize: none)"
        )
    try:
        vllm_python()
    except LatentReasonError as exc:
        problems.append(str(exc))
    return problems


def _chooser(registry: Registry, style: str, problems: list[str]):
    """Functions that look a component up and validate its options, appending problems instead of raising."""

    def lookup(kind: str, where: str, name: str) -> Any:
        try:
            if kind == "task" and is_task_file(name):
                return load_task_file(name, registry.names("evaluator"))
            return registry.get(kind, name)
        except ConfigError as exc:
            problems.extend(f"{where}: {exc.source}: {problem}" for problem in exc.problems)
            return None
        except LatentReasonError as exc:
            problems.append(f"{where}: {exc}")
            return None

    def choose(kind: str, where: str, component: Component) -> Choice | None:
        cls = lookup(kind, f"{where}.name", component.name)
        if cls is None:
            return None
        try:
            options = cls.Options.model_validate(cls.Options.style_defaults.get(style, {}) | component.options)
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, prefix=f"{where}.options"))
            return None
        return Choice(component.name, cls, options, registry.origin(kind, component.name))

    return lookup, choose


def resolve(config: RunConfig, registry: Registry) -> Plan:
    """Look up and validate every component of ``config``.

    ``models.dtype: auto`` becomes the dtype this machine runs (see
    :func:`latentreason.models.runtime.resolve_dtype`).

    Raises:
        ConfigError: listing every unknown name and every invalid option.
    """
    problems: list[str] = []
    lookup, choose = _chooser(registry, config.prompt_style, problems)
    config, dtype_reason = concrete_models(config, problems)
    task = lookup("task", "data.task", config.data.task)
    producer = choose("producer", "producer", config.producer)
    projector_config = config.projector or Component(name=producer.cls.default_projector if producer else "identity")
    projector = choose("projector", "projector", projector_config)
    injector = choose("injector", "injector", config.injector)
    evaluator_config = config.evaluator or (Component(name=task.evaluator) if task else None)
    evaluator = choose("evaluator", "evaluator", evaluator_config) if evaluator_config else None
    decoder = choose("decoder", "decoder", config.decoder) if config.decoder else None
    if task is not None and config.prompt_style not in ("default", *task.instructions):
        problems.append(
            f"prompt_style: task {task.name!r} has no {config.prompt_style!r} wording "
            f"(it has: {', '.join(['default', *task.instructions])})"
        )
    if config.generation.engine == "vllm":
        problems.extend(vllm_problems(config))
    if problems:
        raise ConfigError(problems)
    assert task and producer and projector and injector and evaluator  # each failure appended a problem
    return Plan(config, task, producer, projector, injector, evaluator, decoder, dtype_reason)


def check_task_file(path: str | Path, registry: Registry) -> TaskSpec:
    """Load a task file and check that its evaluator is registered.

    Raises:
        ConfigError: every problem of the file at once.
    """
    return load_task_file(path, registry.names("evaluator"))


def load_checked(path: str | Path | None, overrides: dict[str, Any] | None, registry: Registry) -> RunConfig:
    """:func:`~latentreason.config.load_config`, whose error also lists the components' problems.

    ``load_config`` checks the core fields; when those are wrong, the plugin
    components (names and options) are checked too, from the raw sections,
    so one report holds both. A config whose core is right is returned
    as it is (:func:`resolve` checks its components).

    Raises:
        ConfigError: every problem of the core fields and of every component.
    """
    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        raw = merge(read_yaml(path) if path is not None else {}, overrides or {})
        extra = component_problems(raw, registry)
        raise ConfigError(
            exc.problems + [p for p in extra if p not in exc.problems], source=str(path or "config")
        ) from None


def component_problems(raw: dict[str, Any], registry: Registry) -> list[str]:
    """Problems of the component sections of a raw config dict (those that parse as components)."""
    problems: list[str] = []
    style = raw.get("prompt_style", "default")
    _, choose = _chooser(registry, style if isinstance(style, str) else "default", problems)
    for kind in ("producer", "projector", "injector", "evaluator", "decoder"):
        section = raw.get(kind)
        if isinstance(section, str):
            section = {"name": section}
        if not isinstance(section, dict) or "name" not in section:
            continue
        try:
            component = Component.model_validate(section)
        except ValidationError:
            continue  # the core check has reported it
        choose(kind, kind, component)
    return problems
