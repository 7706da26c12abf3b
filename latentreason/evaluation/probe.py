"""A linear probe from thoughts to simple properties of their questions: is the question in the vectors at all?

A share of question-specific energy says the vectors differ; a probe says
whether they differ *about the question*. Three properties any word problem
has, each a few balanced-ish classes read from the question's text:

- ``dollar``: whether the question contains ``$`` (2 classes);
- ``length``: the tertile of its length in characters among the audited questions (3 classes);
- ``numbers``: the tertile of how many numbers it writes (3 classes; ties share a class).

The probe is ridge regression onto one-hot classes, predicting the highest
score, fitted in closed form (the n x n Gram matrix, so width costs little)
with k-fold cross-validation: each fold's questions are predicted by a probe
fitted on the others, with the features standardised by the fitting
questions' statistics (a few massive dimensions would otherwise decide
everything) and the ridge penalty chosen on the fitting questions alone by
exact leave-one-out. Chance is the majority class's share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

FOLDS = 5
"""Cross-validation folds."""

PENALTIES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
"""Ridge penalties tried, as multiples of the mean eigenvalue of the fitting questions' Gram matrix."""

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass
class ProbeScore:
    """A probe's cross-validated accuracy on one property, with the majority class's share."""

    accuracy: float
    chance: float


def tertiles(values: list[float]) -> torch.Tensor:
    """Classes 0, 1, 2 ``(Q,)``: which third of ``values`` each falls in (equal values share a class)."""
    x = torch.tensor(values, dtype=torch.float64)  # (Q,)
    cuts = torch.quantile(x, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))  # (2,)
    return (x > cuts[0]).long() + (x > cuts[1]).long()


def question_properties(questions: list[str]) -> dict[str, torch.Tensor]:
    """The probed properties of each question: name -> classes ``(Q,)`` (see the module's docstring)."""
    return {
        "dollar": torch.tensor([int("$" in q) for q in questions]),
        "length": tertiles([float(len(q)) for q in questions]),
        "numbers": tertiles([float(len(NUMBER.findall(q))) for q in questions]),
    }


def _loo_penalty(eigenvalues: torch.Tensor, eigenvectors: torch.Tensor, targets: torch.Tensor) -> float:
    """The penalty of :data:`PENALTIES` whose exact leave-one-out predictions classify the fitting questions best.

    Args:
        eigenvalues: the Gram matrix's ``(n,)``.
        eigenvectors: its ``(n, n)``.
        targets: centred one-hot classes ``(n, C)``.
    """
    scale = eigenvalues.clamp_min(0).mean().item() or 1.0
    labels = targets.argmax(1)  # (n,)
    best, best_right = PENALTIES[0] * scale, -1
    for penalty in (p * scale for p in PENALTIES):
        shrink = eigenvalues / (eigenvalues + penalty)  # (n,)
        hat = (eigenvectors * shrink) @ eigenvectors.T  # (n, n): fitted = hat @ targets
        leverage = hat.diagonal().clamp_max(1 - 1e-9)  # (n,)
        left_out = (hat @ targets - leverage[:, None] * targets) / (1 - leverage[:, None])  # (n, C)
        right = (left_out.argmax(1) == labels).sum().item()
        if right >= best_right:  # ties go to the stronger penalty
            best, best_right = penalty, right
    return best


def probe(features: torch.Tensor, labels: torch.Tensor, folds: int = FOLDS) -> ProbeScore:
    """The k-fold accuracy of a ridge probe from ``features`` ``(Q, ...)`` (flattened per question) to ``labels`` ``(Q,)``.

    Question q is in fold ``q % folds``.

    Raises:
        ValueError: fewer than two questions per fold.
    """
    count = features.shape[0]
    if count < 2 * folds:
        raise ValueError(f"a {folds}-fold probe needs at least {2 * folds} questions, got {count}")
    x = features.reshape(count, -1).double()  # (Q, F)
    onehot = torch.nn.functional.one_hot(labels, int(labels.max()) + 1).double()  # (Q, C)
    fold = torch.arange(count) % folds  # (Q,)
    right = 0
    for f in range(folds):
        fit, held = fold != f, fold == f
        mean, std = x[fit].mean(0), x[fit].std(0)  # (F,), (F,)
        std = torch.where(std > 0, std, torch.ones_like(std))  # a dimension constant on the fitting questions drops out
        a, b = (x[fit] - mean) / std, (x[held] - mean) / std  # (n, F), (m, F)
        prior = onehot[fit].mean(0)  # (C,): the intercept
        targets = onehot[fit] - prior  # (n, C)
        eigenvalues, eigenvectors = torch.linalg.eigh(a @ a.T)  # (n,), (n, n)
        penalty = _loo_penalty(eigenvalues, eigenvectors, targets)
        weights = (eigenvectors / (eigenvalues + penalty)) @ (eigenvectors.T @ targets)  # (n, C): dual weights
        scores = b @ a.T @ weights + prior  # (m, C)
        right += int((scores.argmax(1) == labels[held]).sum())
    chance = torch.bincount(labels).max().item() / count
    return ProbeScore(accuracy=right / count, chance=chance)
