"""A linear probe from thoughts to simple properties of their questions: is the question in the vectors at all?

A share of question-specific energy says the vectors differ; a probe says
whether they differ *about the question*. Three properties any word problem
has, each a few balanced-ish classes read from the question's text:

- ``dollar``: whether the question contains ``$`` (2 classes);
- ``length``: the tertile of its length in characters among the audited questions (3 classes);
- ``numbers``: the tertile of how many numbers it writes (3 classes; ties share a class).

And one property of the gold answer, which the question's surface cannot
give away: whether the vectors hold the answer (a positive control's
assistant reads it; a method's would have to work it out):

- ``answer``: for whole-number answers, their parity (2 classes); for
  answers from a few values (choices, yes/no: at most :data:`FEW`
  distinct), the answer itself; otherwise not probed.

The probe is ridge regression onto one-hot classes, fitted in closed form
(the n x n Gram matrix, so width costs little), classifying by the nearest
class centroid of its scores, with k-fold cross-validation: each fold's
questions are predicted by a probe fitted on the others, with the features
standardised by the fitting questions' statistics (a few massive dimensions
would otherwise decide everything) and the ridge penalty chosen on the
fitting questions alone by exact leave-one-out. Chance is the majority
class's share.
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

WHOLE = re.compile(r"-?\d+")

FEW = 5
"""The most distinct answers probed as classes of their own."""


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


def question_properties(questions: list[str], answers: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The probed properties of each question: name -> classes ``(Q,)`` (see the module's docstring).

    Args:
        questions: the questions' text.
        answers: their gold answers (None: the answer is not probed).
    """
    properties = {
        "dollar": torch.tensor([int("$" in q) for q in questions]),
        "length": tertiles([float(len(q)) for q in questions]),
        "numbers": tertiles([float(len(NUMBER.findall(q))) for q in questions]),
    }
    if answers is not None:
        if all(WHOLE.fullmatch(a.strip()) for a in answers):
            properties["answer"] = torch.tensor([int(a.strip()) % 2 for a in answers])
        elif len(values := sorted(set(answers))) <= FEW:
            properties["answer"] = torch.tensor([values.index(a) for a in answers])
    return properties


def _left_out(
    eigenvalues: torch.Tensor, eigenvectors: torch.Tensor, targets: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Exact leave-one-out ridge predictions ``(n, C)`` of the fitting questions' centred one-hot ``targets`` ``(n, C)``.

    ``eigenvalues`` ``(n,)`` and ``eigenvectors`` ``(n, n)`` are their Gram matrix's.
    """
    shrink = eigenvalues / (eigenvalues + penalty)  # (n,)
    hat = (eigenvectors * shrink) @ eigenvectors.T  # (n, n): fitted = hat @ targets
    leverage = hat.diagonal().clamp_max(1 - 1e-9)  # (n,)
    return (hat @ targets - leverage[:, None] * targets) / (1 - leverage[:, None])


def _nearest(scores: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The class ``(m,)`` whose centroid ``(C, C)`` is nearest each score row ``(m, C)`` (NaN centroids never win)."""
    distances = torch.cdist(scores, centroids.nan_to_num(float("inf")))  # (m, C)
    return distances.nan_to_num(float("inf")).argmin(1)


def _centroids(scores: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Each class's mean score row ``(C, C)`` (NaN for a class with no question)."""
    onehot = torch.nn.functional.one_hot(labels, classes).double()  # (n, C)
    return (onehot.T @ scores) / onehot.sum(0)[:, None]


def probe(features: torch.Tensor, labels: torch.Tensor, folds: int = FOLDS) -> ProbeScore:
    """The k-fold accuracy of a ridge probe from ``features`` ``(Q, ...)`` (flattened per question) to ``labels`` ``(Q,)``.

    Question q is in fold ``q % folds``. A held-out question gets the class
    whose centroid of leave-one-out scores (on the fitting questions) is
    nearest its score: with one-hot targets, the class between two others
    along one direction (a middle tertile) is not masked, as it is under
    arg-max.

    Raises:
        ValueError: fewer than two questions per fold.
    """
    count = features.shape[0]
    if count < 2 * folds:
        raise ValueError(f"a {folds}-fold probe needs at least {2 * folds} questions, got {count}")
    x = features.reshape(count, -1).double()  # (Q, F)
    classes = int(labels.max()) + 1
    onehot = torch.nn.functional.one_hot(labels, classes).double()  # (Q, C)
    fold = torch.arange(count) % folds  # (Q,)
    right = 0
    for f in range(folds):
        fit, held = fold != f, fold == f
        mean, std = x[fit].mean(0), x[fit].std(0)  # (F,), (F,)
        std = torch.where(std > 0, std, torch.ones_like(std))  # a dimension constant on the fitting questions drops out
        a, b = (x[fit] - mean) / std, (x[held] - mean) / std  # (n, F), (m, F)
        targets = onehot[fit] - onehot[fit].mean(0)  # (n, C), centred: the intercept
        eigenvalues, eigenvectors = torch.linalg.eigh(a @ a.T)  # (n,), (n, n)
        scale = eigenvalues.clamp_min(0).mean().item() or 1.0
        best, best_right, centroids = 0.0, -1, torch.empty(0)
        for penalty in (p * scale for p in PENALTIES):  # chosen by leave-one-out on the fitting questions
            left_out = _left_out(eigenvalues, eigenvectors, targets, penalty)  # (n, C)
            middle = _centroids(left_out, labels[fit], classes)  # (C, C)
            hits = int((_nearest(left_out, middle) == labels[fit]).sum())
            if hits >= best_right:  # ties go to the stronger penalty
                best, best_right, centroids = penalty, hits, middle
        weights = (eigenvectors / (eigenvalues + best)) @ (eigenvectors.T @ targets)  # (n, C): dual weights
        scores = b @ a.T @ weights  # (m, C)
        right += int((_nearest(scores, centroids) == labels[held]).sum())
    chance = torch.bincount(labels).max().item() / count
    return ProbeScore(accuracy=right / count, chance=chance)
