"""How much a method's soft thoughts vary between questions: a check for thoughts that collapsed to a constant.

A producer that reads the question (SoftCoT) is meant to give each question
its own thoughts. If the vectors are nearly the same for every question, the
method is a trained prompt (``pause-trained``) whatever its architecture.
Two figures per stage, over the questions of a slice, for each thought slot
(thought position, and thought set where a producer makes several):

- the question-specific share: the mean over vectors of
  ``|x_q - mean_q x|^2 / |x_q|^2``, the share of a vector's energy that is
  not common to all questions (0 for a constant, near 1 for vectors that
  share no component);
- the mean cosine between two different questions' vectors in the same slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Spread:
    """How much one stage's vectors vary between questions.

    Attributes:
        stage: where the vectors were taken (``"producer"``: what the producer
            made; ``"projected"``: what the LLM receives).
        specific_share: the mean share of a vector's energy not common to all questions.
        cosine: the mean cosine between different questions' vectors in the same slot.
        norm: the mean L2 norm of a vector.
    """

    stage: str
    specific_share: float
    cosine: float
    norm: float


def spread(stage: str, vectors: torch.Tensor) -> Spread:
    """The spread of ``vectors`` ``(Q, S, d)``: Q questions, S slots, over questions per slot.

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
    return Spread(
        stage=stage,
        specific_share=specific.mean().item(),
        cosine=cosines[:, others].mean().item(),
        norm=x.norm(dim=-1).mean().item(),
    )
