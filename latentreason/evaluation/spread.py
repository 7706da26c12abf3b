"""How much a method's soft thoughts vary between questions: a check for thoughts that collapsed to a constant.

A producer that reads the question (SoftCoT) is meant to give each question
its own thoughts. If the vectors are nearly the same for every question, the
method is a trained prompt (``pause-trained``) whatever its architecture.
Figures per stage, over the questions of a slice, for each thought slot
(thought position, and thought set where a producer makes several):

- the question-specific share: the mean over vectors of
  ``|x_q - mean_q x|^2 / |x_q|^2``, the share of a vector's energy that is
  not common to all questions (0 for a constant, near 1 for vectors that
  share no component);
- the mean cosine between two different questions' vectors in the same slot;
- the effective rank of what varies: the participation ratio
  ``(sum λ)^2 / sum λ^2`` of the eigenvalues λ of the covariance of the
  centred vectors (each slot minus its mean over questions, all slots
  pooled); 1 when questions differ along one direction, up to the width
  when they differ evenly in every direction, 0 for a constant;
- the mean norm, and its ratio to the LLM's mean token-embedding norm (the
  scale of what the LLM reads at any other position).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Spread:
    """How much one stage's vectors vary between questions.

    Attributes:
        stage: where the vectors were taken (``"producer"``: what the producer
            made; ``"projected"``: the projector's output; ``"llm input"``: what
            the LLM receives at the thought positions).
        specific_share: the mean share of a vector's energy not common to all questions.
        cosine: the mean cosine between different questions' vectors in the same slot.
        effective_rank: the participation ratio of the centred vectors' covariance eigenvalues.
        norm: the mean L2 norm of a vector.
        norm_ratio: ``norm`` over the LLM's mean token-embedding norm.
    """

    stage: str
    specific_share: float
    cosine: float
    effective_rank: float
    norm: float
    norm_ratio: float


def effective_rank(vectors: torch.Tensor) -> float:
    """The participation ratio of the covariance eigenvalues of ``vectors`` ``(Q, S, d)`` centred over questions per slot.

    Returns 0 for vectors that do not vary between questions.
    """
    x = vectors.double()
    centred = (x - x.mean(0, keepdim=True)).flatten(0, 1)  # (Q*S, d)
    if centred.pow(2).sum() <= 1e-20 * x.pow(2).sum():  # rounding noise of a constant
        return 0.0
    eigenvalues = torch.linalg.svdvals(centred).pow(2)  # (min(Q*S, d),): the covariance's, times Q*S
    return (eigenvalues.sum().pow(2) / eigenvalues.pow(2).sum()).item()


def spread(stage: str, vectors: torch.Tensor, embed_norm: float) -> Spread:
    """The spread of ``vectors`` ``(Q, S, d)``: Q questions, S slots, over questions per slot.

    Args:
        stage: the stage's name.
        vectors: the stage's vectors.
        embed_norm: the LLM's mean token-embedding norm (the scale ``norm_ratio`` is against).

    Raises:
        ValueError: fewer than two questions.
    """
    if vectors.shape[0] < 2:
        raise ValueError(f"the spread between questions needs at least two questions, got {vectors.shape[0]}")
    x = vectors.double()
    energy = x.pow(2).sum(-1).clamp_min(torch.finfo(torch.float64).tiny)  # (Q, S)
    specific = (x - x.mean(0, keepdim=True)).pow(2).sum(-1) / energy  # (Q, S)
    unit = torch.nn.functional.normalize(x, dim=-1)  # (Q, S, d)
    cosines = torch.einsum("qsd,psd->sqp", unit, unit)  # (S, Q, Q)
    others = ~torch.eye(x.shape[0], dtype=torch.bool)  # (Q, Q): pairs of different questions
    norm = x.norm(dim=-1).mean().item()
    return Spread(
        stage=stage,
        specific_share=specific.mean().item(),
        cosine=cosines[:, others].mean().item(),
        effective_rank=effective_rank(x),
        norm=norm,
        norm_ratio=norm / embed_norm,
    )
