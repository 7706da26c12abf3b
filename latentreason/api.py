"""The library API; the CLI is a thin layer over these functions.

Every function prepares its run with :func:`prepare` (see
:mod:`latentreason.assembly.prepare`): the config, data and checkpoints are
checked before any model loads, then the pipeline is built in one way.

Example::

    from latentreason import load_config, run, train

    config = load_config(overrides={"producer": {"name": "cot"}, "data": {"task": "gsm8k", "limit": 5}})
    summary = run(config)
    print(summary.table())
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple

from latentreason import distributed
from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.prepare import Log, Prepared, prepare, to_stderr
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import HeldBack, Plan
from latentreason.components.example import Example
from latentreason.config import RunConfig
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.evaluation.audit import AUDIT_FILE, MIN_QUESTIONS, Audit, audit, check_slice
from latentreason.evaluation.results import Summary
from latentreason.evaluation.runner import evaluate
from latentreason.models.runtime import Runtime
from latentreason.training.distill import DistillReport, Sampling
from latentreason.training.distill import distill as distill_chains
from latentreason.training.targets import TargetsFile, TargetsUse, load_targets, select
from latentreason.training.tensorboard import require_tensorboard
from latentreason.training.trainer import Trainer, TrainResult, gold_targets, mean_loss
from latentreason.training.trigger import TriggerReport, label_rule
from latentreason.training.trigger import train_trigger as fit_trigger


def run(
    config: RunConfig,
    *,
    output: str | Path | None = None,
    progress: bool = True,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    log: Log | None = to_stderr,
) -> Summary:
    """Evaluate the configured method on the configured task.

    The components, the data and the checkpoint files are checked (every
    problem at once) before any model loads (see :func:`prepare`).

    Args:
        config: the run config.
        output: results folder (default ``<output_dir>/<task>-<producer>-<split>``).
        progress: show a progress bar.
        registry: plugins (default: installed ones).
        runtime: preloaded models (default: loaded from the config).
        log: receives the notes on the run (the dtype, untrained parts, checkpoint mismatches); None: none.

    Returns:
        The summary; per-example results are in the results folder.
    """
    prepared: Prepared[list[Example]] = prepare(config, registry, runtime, log=log)
    return evaluate(prepared.pipeline, prepared.examples, output, progress=progress)


def checkpoint_dir(config: RunConfig) -> Path:
    """The training folder named by ``config.train.checkpoint_dir``.

    Raises:
        LatentReasonError: the name uses a ``{field}`` other than
            ``{producer}`` and ``{task}``, or has an unmatched brace.
    """
    template = config.train.checkpoint_dir
    try:
        return Path(template.format(producer=config.producer.name, task=config.data.task))
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise LatentReasonError(
            f"train.checkpoint_dir {template!r} is not a valid folder template ({type(exc).__name__}: {exc}); "
            "it may use {producer} and {task}, and a literal brace is written {{ or }}."
        ) from None


def train(
    config: RunConfig,
    *,
    progress: bool = True,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    log: Log | None = to_stderr,
) -> TrainResult:
    """Train the configured method's trainable components; resumes if interrupted; then audit their thoughts.

    They start from ``config.checkpoint`` where it names them, else from their
    seeded initialization, never from a producer's shipped default: a
    trained method and its control then get the same budget, and a shipped
    projector's training data cannot leak into the held-back validation.
    A producer that fits state from data (SoftCoT's ``standardise``) fits it
    first, on the training examples (see :meth:`Pipeline.fit`).

    Its training and validation examples are read before any model loads.
    With ``train.targets`` (a ``latentreason distill`` file, checked against
    the run then) each training row is supervised with its self-distilled
    chain instead of the gold rationale and answer; rows without one are
    left out, and validation stays on the gold (see :func:`training_data`).

    A method that injects vectors is then audited on held-back training
    questions (:func:`audit_rows`, checked before training starts), with
    ``audit.json`` beside the weights.

    Returns:
        Where the weights are, the loss history and the audit.
    """
    _full_precision(config)
    if config.train.tensorboard:
        require_tensorboard()  # before any model loads
    prepared = prepare(config, registry, runtime, data=training_data, default_weights=False, log=log)
    pipeline, (train_examples, validation, targets, used) = prepared.pipeline, prepared.examples
    held_back = audit_rows(pipeline)  # checked before hours of training
    pipeline.fit(train_examples, log)  # e.g. statistics of the producer's vectors, on training examples only
    trainer = Trainer(
        pipeline,
        train_examples,
        validation,
        config.train,
        checkpoint_dir(config),
        seed=config.seed,
        progress=progress,
        distilled=targets,
    )
    if trainer.cut and log is not None:
        log(
            f"warning: {len(trainer.cut)} of {len(train_examples)} training targets are longer than "
            f"train.max_target_tokens ({config.train.max_target_tokens}) and are cut before their end (no answer, "
            "no end of turn); raise it to train on them whole (self-distilled chains: to distill's --max-new-tokens)"
        )
    result = trainer.run()
    result.targets = used
    if held_back is not None and distributed.current().is_main:
        result.audit = audit_after_training(pipeline, held_back, result.weights)
    distributed.barrier()  # the first rank's audit is written before any rank returns
    return result


@dataclass(frozen=True)
class LossReport:
    """What :func:`loss` measured.

    Attributes:
        loss: the mean NLL (validation's weighting).
        examples: how many examples.
        weights: the weights files the method loaded (checkpoints, a shipped projector).
    """

    loss: float
    examples: int
    weights: list[str]


def loss(
    config: RunConfig,
    *,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    log: Log | None = to_stderr,
) -> LossReport:
    """The mean NLL of the gold rationale and answer under the configured method, on the examples ``config.data`` selects.

    It is computed as training's validation loss is (targets cut at
    ``train.max_target_tokens``, batches of ``train.batch_size``, weighted by
    examples), so checkpoints, including ones trained elsewhere or shipped,
    compare on examples none of them trained on (e.g. ``data.split: train``
    with an ``offset`` past every training run's rows).

    Returns:
        The loss, the number of examples and the weights used.
    """
    _full_precision(config)
    prepared: Prepared[list[Example]] = prepare(config, registry, runtime, log=log)  # data and checkpoints first
    pipeline, examples = prepared.pipeline, prepared.examples
    for module in pipeline.trainable().values():
        module.train(False)  # no dropout
    targets = gold_targets(pipeline, examples, config.train.max_target_tokens)
    value = mean_loss(pipeline, distributed.current(), examples, targets, config.train.batch_size)
    return LossReport(value, len(examples), list(pipeline.checkpoints))


def thought_audit(
    config: RunConfig,
    *,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    log: Log | None = to_stderr,
) -> Audit:
    """Audit the configured method's soft thoughts on the held-back training questions ``config.data`` selects.

    See :mod:`latentreason.evaluation.audit` for the figures. ``config.data``
    must name a training split (e.g. ``split: train`` with an ``offset`` past
    every training run's rows); the evaluation split is refused before any
    model loads.

    Raises:
        LatentReasonError: the evaluation split, fewer than 10 examples, or a
            producer that makes no vectors (text hints or none).
    """
    split = ""

    def audited(plan: Plan) -> list[Example]:
        nonlocal split
        split = config.data.split or plan.task.eval_split
        examples = plan.checked_examples()
        check_slice(plan.task, split, len(examples))
        return examples

    prepared = prepare(config, registry, runtime, data=audited, log=log)  # the slice is refused before models load
    return audit(prepared.pipeline, prepared.examples, split, config.data.offset)


def audit_rows(pipeline: Pipeline) -> HeldBack | None:
    """The held-back training rows ``train`` audits its thoughts on (``config.audit``), or None for no audit.

    None when ``audit.after_training`` is off or the producer makes no soft
    thoughts (e.g. a LoRA on ``cot``).

    Raises:
        LatentReasonError: the rows are not there (the evaluation split, no
            rows past the training's, fewer than 10), with the settings that fix it.
    """
    config = pipeline.config
    if not config.audit.after_training or pipeline.producer.thought_dim is None:
        return None
    fix = "set audit.offset/audit.split to held-back training rows, or audit.after_training=false"
    try:
        held_back = pipeline.plan.held_back()
    except LatentReasonError as exc:
        raise LatentReasonError(f"The thought audit after training has no rows: {exc} ({fix})") from None
    if len(held_back.examples) < MIN_QUESTIONS:
        raise LatentReasonError(
            f"The thought audit after training needs at least {MIN_QUESTIONS} held-back rows; {held_back.split} has "
            f"{len(held_back.examples)} from row {held_back.offset} ({fix})."
        )
    return held_back


def audit_after_training(pipeline: Pipeline, held_back: HeldBack, weights: Path) -> Audit:
    """Audit the trained thoughts on ``held_back`` (see :func:`audit_rows`) and write ``audit.json`` beside ``weights``.

    ``weights`` is the file the pipeline's trained parts were saved to.
    """
    report = replace(audit(pipeline, held_back.examples, held_back.split, held_back.offset), weights=[str(weights)])
    report.write(weights.parent / AUDIT_FILE)
    return report


def _full_precision(config: RunConfig) -> None:
    """Refuse ``models.quantize`` for training, which runs the full-precision model."""
    if config.models.quantize != "none":
        raise LatentReasonError(
            f"models.quantize={config.models.quantize!r} applies to decoding; training and its loss run the full-precision "
            "model (a projector trained in float32 serves an int8 evaluation as it is). Drop models.quantize here."
        )


def training_examples(plan: Plan) -> tuple[list[Example], list[Example]]:
    """The training and validation examples ``plan.config.train`` selects (read before any model loads).

    By default validation is held back from the training split: its first
    ``val_limit`` examples validate, and training takes ``limit`` examples
    after them, so the same examples validate whatever the data source holds
    after them. The task's evaluation split validates only when
    ``train.allow_eval_split`` says so.

    Raises:
        ConfigError: a checkpoint is unreadable or holds an adapter of another LLM.
        LatentReasonError: the task has no training split and none is named,
            or validation would read the evaluation split without leave.
    """
    config = plan.config
    problems = plan.checkpoint_problems()
    if problems:
        raise ConfigError(problems, source=f"the training on {plan.task.name}")
    task, cfg = plan.task, config.train
    split = cfg.split or task.train_split
    if split is None:
        raise LatentReasonError(
            f"Task {task.name!r} has no training split; train on another task (e.g. gsm8k) and evaluate its "
            "checkpoint here, or name a split with train.split."
        )
    source = config.data.source
    if cfg.val_split in (None, split):
        validation = task.load(split, source, cfg.val_limit) if cfg.val_limit else []
        return task.load(split, source, cfg.limit, offset=cfg.val_limit), validation
    if cfg.val_split == task.eval_split and not cfg.allow_eval_split:
        raise LatentReasonError(
            f"train.val_split {cfg.val_split!r} is {task.name}'s evaluation split: validating (and choosing checkpoints) "
            "on test data leaks it into the results. Leave val_split unset to hold back part of the training split, "
            "or set train.allow_eval_split=true if you really mean it."
        )
    validation = task.load(cfg.val_split, source, cfg.val_limit) if cfg.val_limit else []
    return task.load(split, source, cfg.limit), validation


class TrainingData(NamedTuple):
    """What ``train`` reads, before any model loads (see :func:`training_data`).

    Attributes:
        train: the training examples (with ``train.targets``, those that have a kept chain).
        validation: the validation examples (always supervised with the gold).
        targets: the self-distilled targets, or None for the gold.
        used: how many training rows used a chain and how many were skipped, or None.
    """

    train: list[Example]
    validation: list[Example]
    targets: TargetsFile | None = None
    used: TargetsUse | None = None


def training_data(plan: Plan) -> TrainingData:
    """:func:`training_examples`, and with ``train.targets`` the targets file, checked, and the rows it covers.

    Raises:
        LatentReasonError: what :func:`training_examples` refuses, and a
            targets file that is missing, made with another LLM or prompt, not
            of the task's training problems, or without a chain for any
            training row (see :mod:`latentreason.training.targets`).
    """
    train, validation = training_examples(plan)
    if plan.config.train.targets is None:
        return TrainingData(train, validation)
    targets = load_targets(plan.config, plan.task)
    kept, used = select(targets, train)
    return TrainingData(kept, validation, targets, used)


def distill(
    config: RunConfig,
    out: str | Path,
    sampling: Sampling | None = None,
    *,
    progress: bool = True,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    log: Log | None = to_stderr,
) -> DistillReport:
    """Write self-distilled training targets: the configured method's own correct chains on training problems.

    Greedy first, then ``sampling.tries`` sampled chains for each problem the
    greedy chain gets wrong; only correct chains are kept (see
    :mod:`latentreason.training.distill`). ``config.data`` selects the
    problems, from the task's training split unless it names another
    (never the evaluation split), checked before any model loads.
    Interrupted, the same call resumes.

    Returns:
        Where the targets file is, and its provenance.
    """
    return distill_chains(
        config, out, sampling or Sampling(), registry=registry, runtime=runtime, progress=progress, log=log
    )


def train_trigger(
    config: RunConfig,
    *,
    label: Literal["paragraph", "sentence"] = "paragraph",
    epochs: int = 300,
    lr: float = 0.01,
    out: str | Path | None = None,
    progress: bool = True,
    registry: Registry | None = None,
    runtime: Runtime | None = None,
    log: Log | None = to_stderr,
) -> TriggerReport:
    """Train a segment-boundary trigger for ``segment: classifier`` decoding.

    Examples come from ``train.limit`` and ``train.val_limit`` (see
    :func:`training_examples`), targets are cut at ``train.max_target_tokens`` and the
    LLM sees the configured producer's prompts (see
    :mod:`latentreason.training.trigger`).

    Args:
        config: the run config (models, producer, task, ``train`` limits).
        label: the text rule whose boundaries the trigger learns.
        epochs: full-batch optimizer steps.
        lr: learning rate.
        out: the ``.safetensors`` file (default ``checkpoints/trigger-<task>.safetensors``).
        progress: show progress bars.
        registry: plugins (default: installed ones).
        runtime: preloaded models (default: loaded from the config).

    Returns:
        Where the trigger is, with its validation metrics.
    """
    _full_precision(config)
    prepared = prepare(config, registry, runtime, data=training_examples, log=log)
    pipeline, (train_examples, validation) = prepared.pipeline, prepared.examples
    cfg = config.train
    return fit_trigger(
        pipeline,
        train_examples,
        validation,
        label_rule(label, cfg.max_target_tokens),
        out=out or Path("checkpoints") / f"trigger-{pipeline.task.name}.safetensors",
        epochs=epochs,
        lr=lr,
        batch_size=cfg.batch_size,
        max_target_tokens=cfg.max_target_tokens,
        progress=progress,
    )
