"""Shared output scaling of the SoftCoT projectors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from latentreason.plugin import PluginOptions, Projector


class NormMatchedOptions(PluginOptions):
    """Options shared by the SoftCoT projectors.

    Attributes:
        match_norm: give every output vector a learned L2 norm that starts at the
            LLM's mean token-embedding norm. LLMs differ widely in embedding scale
            (Qwen2.5 about 0.5, SmolLM2 about 2.9); without this, a default-
            initialised projection injects vectors of an arbitrary scale.
    """

    match_norm: bool = True


class NormMatchedProjector(Projector):
    """Base of projectors whose outputs are rescaled to the LLM's embedding norm."""

    options: NormMatchedOptions

    def __init__(self, options: NormMatchedOptions, d_in: int, d_out: int, embed_norm: float) -> None:
        super().__init__(options, d_in, d_out, embed_norm)
        if options.match_norm:
            self.log_norm = nn.Parameter(torch.tensor(math.log(embed_norm)))

    def rescale(self, vectors: torch.Tensor) -> torch.Tensor:
        """Set each vector of ``(B, N, d_out)`` to the learned norm (if enabled)."""
        if not self.options.match_norm:
            return vectors
        return F.normalize(vectors, dim=-1) * self.log_norm.exp()
