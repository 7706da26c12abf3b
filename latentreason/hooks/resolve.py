"""Turn a :class:`RunConfig` into validated component classes and options.

Every problem (unknown names, bad options of any component) is collected and
reported in one :class:`ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from latentreason.config import Component, PluginOptions, RunConfig, format_validation_error
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.hooks.registry import Registry
from latentreason.models.quantization import check_int8
from latentreason.models.runtime import resolve_device, resolve_dtype

if TYPE_CHECKING:
    from latentreason.components.task import TaskSpec


@dataclass(frozen=True)
class Choice:
    """A component class with its validated options."""

    name: str
    cls: Any
    options: PluginOptions


@dataclass(frozen=True)
class Plan:
    """A run's components, resolved and validated.

    Attributes:
        config: the run config.
        task: the task spec.
        producer, projector, injector, evaluator: the chosen components.
        decoder: the decoding controller, if any.
    """

    config: RunConfig
    task: TaskSpec
    producer: Choice
    projector: Choice
    injector: Choice
    evaluator: Choice
    decoder: Choice | None = None


def concrete_models(config: RunConfig, problems: list[str]) -> RunConfig:
    """``config`` with ``models.dtype: auto`` resolved for this machine; problems of ``models.quantize`` appended.

    The results folder then records the dtype the run really used.
    """
    models = config.models
    device = resolve_device(models.device)
    dtype, _ = resolve_dtype(models.dtype, device)
    if models.quantize == "int8":
        problems.extend(check_int8(device, "float32" if models.dtype == "auto" else dtype))
        dtype = "float32"
    return config.model_copy(update={"models": models.model_copy(update={"dtype": dtype})})


def vllm_problems(config: RunConfig) -> list[str]:
    """Why ``generation.engine: vllm`` cannot run this config (empty if it can)."""
    from latentreason.decoding.vllm import vllm_python

    problems = []
    if config.decoder is not None:
        problems.append(
            f"generation.engine: vllm cannot run decoder {config.decoder.name!r} (it rewrites the KV cache while the "
            "LLM writes); use the transformers engine"
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


def resolve(config: RunConfig, registry: Registry) -> Plan:
    """Look up and validate every component of ``config``.

    ``models.dtype: auto`` becomes the dtype this machine runs (see
    :func:`latentreason.models.runtime.resolve_dtype`).

    Raises:
        ConfigError: listing every unknown name and every invalid option.
    """
    problems: list[str] = []

    def lookup(kind: str, where: str, name: str) -> Any:
        try:
            return registry.get(kind, name)
        except LatentReasonError as exc:
            problems.append(f"{where}: {exc}")
            return None

    def choose(kind: str, where: str, component: Component) -> Choice | None:
        cls = lookup(kind, f"{where}.name", component.name)
        if cls is None:
            return None
        try:
            options = cls.Options.model_validate(
                cls.Options.style_defaults.get(config.prompt_style, {}) | component.options
            )
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, prefix=f"{where}.options"))
            return None
        return Choice(component.name, cls, options)

    config = concrete_models(config, problems)
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
    return Plan(config, task, producer, projector, injector, evaluator, decoder)
