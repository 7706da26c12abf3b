"""The one place a run is prepared: from a config to a pipeline and its data.

Every workflow (``run``, ``compare``, ``loss``, ``thoughts``, ``train``,
``train-trigger``, the lm-eval model, the benchmarks) goes through
:func:`prepare`, or through its two halves where a comparison checks every
cell before it loads any model:

1. :func:`checked`: resolve the config (every unknown name and bad option at
   once) and read the run's data and checkpoint files; no model loads.
2. :func:`build`: seed, join torchrun's process group (once per process),
   load the models (or take preloaded ones), build the pipeline, and report
   what the user should know about it (the dtype and why; untrained parts;
   a checkpoint saved mid-training or trained with other producer options).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from latentreason import distributed
from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import Plan, resolve
from latentreason.components.example import Example
from latentreason.config import RunConfig
from latentreason.models.runtime import Runtime, dtype_warning, resolve_device
from latentreason.storage import read_meta, unfinished_training

T = TypeVar("T")
Log = Callable[[str], None]


def to_stderr(message: str) -> None:
    """Print ``message`` to stderr on rank 0 (under torchrun every rank prepares the same run)."""
    if distributed.current().is_main:
        print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Prepared(Generic[T]):
    """A prepared run.

    Attributes:
        pipeline: the method, with its models.
        examples: what the run reads (the evaluation examples by default; see ``data`` of :func:`prepare`).
    """

    pipeline: Pipeline
    examples: T


def evaluation_data(plan: Plan) -> list[Example]:
    """The examples ``config.data`` selects, with every checkpoint file checked (see :meth:`Plan.checked_examples`)."""
    return plan.checked_examples()


def checked(
    config: RunConfig,
    registry: Registry,
    data: Callable[[Plan], T] = evaluation_data,  # type: ignore[assignment]
) -> tuple[Plan, T]:
    """Resolve ``config`` and read its data; no model loads.

    Args:
        config: the run config.
        registry: plugins.
        data: what the run reads, from the plan (default: its evaluation examples).

    Raises:
        ConfigError: every problem of the config, then of its data and checkpoints.
    """
    plan = resolve(config, registry)
    return plan, data(plan)


def build(
    plan: Plan,
    registry: Registry,
    runtime: Runtime | None = None,
    *,
    default_weights: bool = True,
    log: Log | None = to_stderr,
) -> Pipeline:
    """The pipeline of a resolved plan: seeded, in torchrun's process group, with its models.

    Args:
        plan: the resolved run.
        registry: plugins (their model loaders).
        runtime: preloaded models (default: loaded from the plan's ``models`` and ``adapter``).
        default_weights: load the producer's default checkpoint where it fits (see :class:`Pipeline`).
        log: receives the notes on the run (see :func:`notes`); None: no notes.
    """
    config = plan.config
    torch.manual_seed(config.seed)
    distributed.setup(runtime.device if runtime else config.models.device)  # each rank loads onto its own device
    if log is not None:
        log(models_note(plan))
    pipeline = Pipeline(
        plan,
        runtime or Runtime(config.models, registry.load_model, config.adapter),
        default_weights=default_weights,
    )
    if log is not None:
        for note in notes(pipeline, untrained=default_weights):
            log(note)
    return pipeline


def prepare(
    config: RunConfig,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    *,
    data: Callable[[Plan], T] = evaluation_data,  # type: ignore[assignment]
    default_weights: bool = True,
    log: Log | None = to_stderr,
) -> Prepared[T]:
    """Prepare the run ``config`` describes: :func:`checked` (no model loads), then :func:`build`.

    Args:
        config: the run config.
        registry: plugins (default: installed ones).
        runtime: preloaded models (default: loaded from the config).
        data: what the run reads, from the plan (default: its evaluation examples).
        default_weights: load the producer's default checkpoint where it fits (training passes False).
        log: receives the notes on the run; None: no notes.

    Raises:
        ConfigError: the config, its data or its checkpoints, before any model loads.
    """
    registry = registry or Registry()
    plan, examples = checked(config, registry, data)
    return Prepared(build(plan, registry, runtime, default_weights=default_weights, log=log), examples)


def models_note(plan: Plan) -> str:
    """The dtype the models run in and why (``resolve`` decided it), and a warning for emulated bf16."""
    models = plan.config.models
    line = f"models: {models.dtype} ({plan.dtype_reason})" + (", int8 decoding" if models.quantize == "int8" else "")
    warning = dtype_warning(models.dtype, resolve_device(models.device))
    return line + (f"\n{warning}" if warning else "")


def notes(pipeline: Pipeline, *, untrained: bool = True) -> list[str]:
    """What a user should know before trusting the run's results: untrained parts and checkpoint mismatches.

    Args:
        pipeline: the run's pipeline.
        untrained: warn about trainable parts no checkpoint gave (off for training, which starts from them).
    """
    config, out = pipeline.config, []
    if untrained and pipeline.untrained:
        out.append(
            f"warning: {config.producer.name} runs with untrained (randomly initialised) "
            f"{', '.join(pipeline.untrained)}; pass --checkpoint PATH from `latentreason train` for meaningful results."
        )
    mine = pipeline.components()["producer"]
    assert isinstance(mine, dict)
    for path in pipeline.checkpoints:
        meta = read_meta(path)
        if unfinished := unfinished_training(meta):
            out.append(f"warning: {path} is a save from the middle of its training ({unfinished}).")
        made = meta.get("components", {}).get("producer")
        if made and made.get("name") == mine["name"]:
            # an option the checkpoint does not record is newer than it: it was trained as at that option's default
            differ = [
                f"{k}: {v!r} there, {mine['options'].get(k)!r} here"
                for k, v in sorted(made["options"].items())
                if v != mine["options"].get(k)
            ]
            if differ:
                out.append(f"note: {path} was trained with other producer options ({'; '.join(differ)}).")
    return out
