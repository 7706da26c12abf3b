"""A two-layer MLP projector (a SoftCoT variant)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from latentreason_softcot.norm_matched import NormMatchedOptions, NormMatchedProjector


class MLPOptions(NormMatchedOptions):
    """Options of the MLP projector.

    Attributes:
        hidden: hidden width (default: twice the LLM's hidden size).
    """

    hidden: int | None = Field(None, gt=0)


class MLPProjector(NormMatchedProjector):
    """``Linear -> GELU -> Linear``, then optional norm matching."""

    Options = MLPOptions
    options: MLPOptions

    def __init__(self, options: MLPOptions, d_in: int, d_out: int, embed_norm: float) -> None:
        super().__init__(options, d_in, d_out, embed_norm)
        hidden = options.hidden or 2 * d_out
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))

    def forward(self, thoughts: torch.Tensor) -> torch.Tensor:
        """Project ``(B, N, d_in)`` to ``(B, N, d_out)``."""
        return self.rescale(self.net(thoughts))
