"""The linear projector of SoftCoT."""

from __future__ import annotations

import torch
from torch import nn

from latentreason_softcot.norm_matched import NormMatchedOptions, NormMatchedProjector


class LinearProjector(NormMatchedProjector):
    """``Linear(d_assistant -> d_llm)``, then optional norm matching."""

    Options = NormMatchedOptions

    def __init__(self, options: NormMatchedOptions, d_in: int, d_out: int, embed_norm: float) -> None:
        super().__init__(options, d_in, d_out, embed_norm)
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, thoughts: torch.Tensor) -> torch.Tensor:
        """Project ``(B, N, d_in)`` to ``(B, N, d_out)``."""
        return self.rescale(self.linear(thoughts))
