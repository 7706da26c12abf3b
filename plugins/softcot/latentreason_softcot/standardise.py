"""Per-dimension standardisation of the assistant's states, with statistics fitted on training questions.

The assistant's hidden states at placeholder positions share one large
direction (massive activations at an attention-sink token): what tells two
questions apart is a small part of each vector. Subtracting the training
mean and dividing by the training standard deviation, dimension by
dimension, gives the projector inputs whose every dimension varies on the
same scale.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from latentreason.plugin import LatentReasonError

MIN_STD = 1e-6
"""Floor of a dimension's standard deviation, so a constant dimension maps to 0 rather than to inf."""


class Standardiser(nn.Module):
    """``(x - mean) / std`` per dimension, with buffers that checkpoints store.

    Buffers: ``mean`` and ``std`` ``(d,)``, and ``count`` (a scalar), the
    number of vectors they were computed from (0 until :meth:`fit`).

    Args:
        dim: the width ``d`` of the vectors.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Set the statistics from all vectors of ``batches`` (each ``(M, d)``), pooled.

        The population mean and standard deviation (so the fitted vectors
        themselves get mean 0 and standard deviation 1 exactly), merged
        batch by batch in float64 (Chan et al.'s update), so the vectors are
        never held all at once.
        """
        count = 0
        mean = torch.zeros_like(self.mean, dtype=torch.float64)  # (d,)
        m2 = torch.zeros_like(mean)  # (d,): summed squared deviations from the mean
        for vectors in batches:
            x = vectors.to(self.mean.device, torch.float64)  # (M, d)
            n = x.shape[0]
            batch_mean = x.mean(dim=0)  # (d,)
            batch_m2 = ((x - batch_mean) ** 2).sum(dim=0)  # (d,)
            total = count + n
            delta = batch_mean - mean  # (d,)
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + delta**2 * (count * n / total)
            count = total
        if count == 0:
            raise LatentReasonError("standardise: there are no training questions to compute statistics from.")
        with torch.no_grad():
            self.mean.copy_(mean)
            self.std.copy_((m2 / count).sqrt())
            self.count.fill_(count)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """Standardise ``(..., d)`` vectors with the fitted statistics.

        Raises:
            LatentReasonError: there are no statistics yet (neither fitted nor loaded).
        """
        if int(self.count) == 0:
            raise LatentReasonError(
                "producer.options.standardise needs statistics of the assistant's states on training questions: "
                "`latentreason train` computes them and stores them in its checkpoint; pass that checkpoint."
            )
        return (vectors - self.mean) / self.std.clamp_min(MIN_STD)  # (..., d)
