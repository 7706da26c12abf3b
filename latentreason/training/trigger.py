"""Training of the segment-boundary trigger (``latentreason train-trigger``).

Each gold target (the task's rationale and answer, then end-of-turn, exactly
as the trainer builds it) is fed once through the frozen LLM, teacher-forced
after the run's prompt, and the last-layer hidden state at every target token
becomes a feature. A token's label is 1 when the text rule (``paragraph`` or
``sentence``, with ``min_tokens: 1`` and no length cap, so the label depends
on the text alone) ends a segment at it, as :func:`~latentreason.decoding.segments.split_segments`
cuts the target. Logistic regression (:class:`~latentreason.decoding.trigger.BoundaryTrigger`)
is fitted on the features with full-batch AdamW, weight decay and a positive
class weight for the imbalance; the threshold is the one with the best F1 on
the validation features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentreason.assembly.pipeline import Pipeline
from latentreason.components.example import Example
from latentreason.components.injector import IGNORE_INDEX
from latentreason.decoding.segments import SegmentOptions, boundary_labels
from latentreason.decoding.trigger import BoundaryTrigger
from latentreason.errors import LatentReasonError
from latentreason.training.trainer import gold_targets, teacher_forced

WEIGHT_DECAY = 0.01


@dataclass
class Metrics:
    """Validation quality of the trigger at one threshold.

    Attributes:
        threshold: boundary when the probability is at least this.
        predicted_rate: fraction of tokens predicted as boundaries.
        precision: predicted boundaries that are gold boundaries.
        recall: gold boundaries that are predicted.
        f1: harmonic mean of precision and recall.
    """

    threshold: float
    predicted_rate: float
    precision: float
    recall: float
    f1: float


@dataclass
class TriggerReport:
    """What a trigger training run produced.

    Attributes:
        path: the trigger file.
        train_examples, val_examples: examples used.
        train_tokens, val_tokens: target tokens (features) used.
        train_positive_rate, val_positive_rate: fraction of tokens that end a segment.
        chosen: validation metrics at the chosen (best-F1) threshold.
        at_half: validation metrics at threshold 0.5.
        loss: training loss after each epoch.
    """

    path: Path
    train_examples: int
    val_examples: int
    train_tokens: int
    val_tokens: int
    train_positive_rate: float
    val_positive_rate: float
    chosen: Metrics
    at_half: Metrics
    loss: list[float]


def label_rule(kind: Literal["paragraph", "sentence"], max_target_tokens: int) -> SegmentOptions:
    """The rule labels come from: ``kind``'s text rule at every token, whatever the segment's length.

    Args:
        kind: ``"paragraph"`` or ``"sentence"``.
        max_target_tokens: the longest target; the length cap is set above it, so it never cuts.
    """
    return SegmentOptions(segment=kind, min_tokens=1, tokens=max_target_tokens + 1)


def extract_features(
    pipeline: Pipeline,
    examples: list[Example],
    label: SegmentOptions,
    *,
    max_target_tokens: int,
    batch_size: int,
    progress: bool = True,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states and boundary labels at every gold target token, from one teacher-forced pass.

    Args:
        pipeline: supplies the prompt (with the producer's thoughts) and the frozen LLM.
        examples: the examples whose gold targets are read.
        label: the segment rule that labels the tokens.
        max_target_tokens: targets are cut as in training.
        batch_size: examples per forward pass.
        progress: show a progress bar.
        desc: the progress bar's label.

    Returns:
        Features ``(N, d_llm)`` (float32, on the CPU) and labels ``(N,)`` (0 or 1), over all target tokens.
    """
    llm = pipeline.runtime.llm
    targets = gold_targets(pipeline, examples, max_target_tokens)
    features, labels = [], []
    starts = range(0, len(examples), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
        batch = examples[start : start + batch_size]
        rows = [targets[ex.id] for ex in batch]
        with torch.no_grad():
            inputs, hidden = teacher_forced(pipeline, batch, rows)  # hidden: (B*K, T, d_llm)
        sets = hidden.shape[0] // len(batch)
        for row in range(hidden.shape[0]):
            target = rows[row // sets]
            at_target = inputs.labels[row] != IGNORE_INDEX  # type: ignore[index]  # built with targets.to(hidden.device)  # (T,): the target's tokens, in order
            features.append(hidden[row][at_target].float().cpu())  # (S, d_llm)
            labels.append(torch.tensor(boundary_labels(target, llm.tokenizer, label), dtype=torch.float))  # (S,)
    return torch.cat(features), torch.cat(labels)


def fit(
    trigger: BoundaryTrigger, features: torch.Tensor, labels: torch.Tensor, *, epochs: int, lr: float
) -> list[float]:
    """Fit the trigger by logistic regression (full batch: one AdamW step per epoch).

    Positives are weighted by the negative/positive ratio, so both classes count equally.

    Args:
        trigger: the trigger to fit (its standardisation is set from ``features``).
        features: ``(N, d_llm)`` training features.
        labels: ``(N,)`` training labels.
        epochs: optimizer steps.
        lr: AdamW learning rate.

    Returns:
        The loss after each step.
    """
    trigger.standardise_on(features)
    positives = labels.sum()
    pos_weight = (labels.numel() - positives) / positives  # ()
    optimizer = torch.optim.AdamW(trigger.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    history = []
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(trigger(features), labels, pos_weight=pos_weight)  # logits (N,)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def metrics(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> Metrics:
    """Precision, recall and F1 of ``probs >= threshold`` against ``labels`` (both ``(N,)``)."""
    predicted = probs >= threshold  # (N,)
    gold = labels.bool()
    hits = float((predicted & gold).sum())
    n_predicted, n_gold = float(predicted.sum()), float(gold.sum())
    precision = hits / n_predicted if n_predicted else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * hits / (n_predicted + n_gold) if n_predicted + n_gold else 0.0
    return Metrics(threshold, n_predicted / len(labels), precision, recall, f1)


def best_threshold(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The threshold with the best F1 of ``probs >= threshold`` (``probs`` and ``labels`` ``(N,)``).

    It lies halfway between the lowest probability predicted as a boundary and
    the next lower one, so hidden states a little off the validation ones
    (e.g. saturated probabilities of 1.0 in validation, 0.9999 when decoding)
    are still classified the same way.
    """
    order = probs.argsort(descending=True)
    ranked, gold = probs[order], labels[order]  # (N,)
    hits = gold.cumsum(0)  # (N,): true positives when the top i+1 are predicted
    f1 = 2 * hits / (torch.arange(1, len(gold) + 1) + gold.sum())  # (N,)
    cut = torch.cat([ranked[1:] != ranked[:-1], torch.tensor([True])])  # (N,): a threshold cannot split ties
    best = int(torch.where(cut, f1, -1.0).argmax())
    below = ranked[best + 1] if best + 1 < len(ranked) else ranked[best]  # the highest probability left out
    return float((ranked[best] + below) / 2)


def _check_both_classes(labels: torch.Tensor, which: str, rule: SegmentOptions) -> None:
    positives = int(labels.sum())
    if positives == 0 or positives == labels.numel():
        kind = "no" if positives == 0 else "only"
        raise LatentReasonError(
            f"The {which} targets have {kind} segment boundaries under the {rule.segment!r} rule "
            f"({labels.numel()} tokens); use more examples or the other label rule (--label)."
        )


def train_trigger(
    pipeline: Pipeline,
    train_examples: list[Example],
    val_examples: list[Example],
    label: SegmentOptions,
    *,
    out: str | Path,
    epochs: int = 300,
    lr: float = 0.01,
    batch_size: int = 4,
    max_target_tokens: int = 256,
    progress: bool = True,
) -> TriggerReport:
    """Train a boundary trigger for ``pipeline``'s LLM and write it to ``out``.

    Deterministic: the frozen LLM runs without sampling and the trigger starts from zeros.

    Args:
        pipeline: the method whose prompts and LLM produce the hidden states.
        train_examples: examples to fit on.
        val_examples: examples to choose the threshold on and report.
        label: the segment rule that labels the tokens (see :func:`label_rule`).
        out: the ``.safetensors`` file to write.
        epochs: full-batch AdamW steps.
        lr: learning rate.
        batch_size: examples per LLM forward pass.
        max_target_tokens: targets are cut as in ``latentreason train``.
        progress: show progress bars.

    Raises:
        LatentReasonError: no validation examples, or targets with no (or only) boundaries.
    """
    if not val_examples:
        raise LatentReasonError(
            "Training a trigger needs validation examples to choose its threshold (train.val_limit > 0)."
        )
    if Path(out).suffix != ".safetensors":
        raise LatentReasonError(f"The trigger file must end in .safetensors, not {str(out)!r}.")
    common: dict[str, Any] = {"max_target_tokens": max_target_tokens, "batch_size": batch_size, "progress": progress}
    train_x, train_y = extract_features(pipeline, train_examples, label, desc="train features", **common)
    val_x, val_y = extract_features(pipeline, val_examples, label, desc="validation features", **common)
    _check_both_classes(train_y, "training", label)
    _check_both_classes(val_y, "validation", label)
    llm = pipeline.runtime.llm
    trigger = BoundaryTrigger(llm.hidden_size)
    loss = fit(trigger, train_x, train_y, epochs=epochs, lr=lr)
    with torch.no_grad():
        probs = trigger.probability(val_x)  # (N_val,)
    threshold = best_threshold(probs, val_y)
    chosen, at_half = metrics(probs, val_y, threshold), metrics(probs, val_y, 0.5)
    path = trigger.save(
        out,
        threshold=threshold,
        label=label.model_dump(exclude_none=True),
        llm=pipeline.runtime.model_name("llm"),
        hidden_size=llm.hidden_size,
        producer=pipeline.config.producer.name,
        task=pipeline.task.name,
        train_examples=len(train_examples),
        train_tokens=len(train_y),
        epochs=epochs,
        lr=lr,
        validation={
            "examples": len(val_examples),
            "tokens": len(val_y),
            "chosen": asdict(chosen),
            "at_0.5": asdict(at_half),
        },
    )
    return TriggerReport(
        path=path,
        train_examples=len(train_examples),
        val_examples=len(val_examples),
        train_tokens=len(train_y),
        val_tokens=len(val_y),
        train_positive_rate=float(train_y.mean()),
        val_positive_rate=float(val_y.mean()),
        chosen=chosen,
        at_half=at_half,
        loss=loss,
    )
