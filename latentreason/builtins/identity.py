"""The ``identity`` projector, for producers whose thoughts already live in the LLM's embedding space."""

from __future__ import annotations

import torch

from latentreason.components.projector import Projector
from latentreason.config import PluginOptions
from latentreason.errors import LatentReasonError


class IdentityProjector(Projector):
    """Passes thoughts through unchanged; for producers that already emit LLM embeddings."""

    def __init__(self, options: PluginOptions, d_in: int, d_out: int, embed_norm: float) -> None:
        super().__init__(options, d_in, d_out, embed_norm)
        if d_in != d_out:
            raise LatentReasonError(
                f"The identity projector needs thoughts as wide as the LLM's embeddings, "
                f"but the producer makes {d_in}-wide vectors and the LLM expects {d_out}. "
                f"Choose a trainable projector, e.g. projector.name=linear."
            )

    def forward(self, thoughts: torch.Tensor) -> torch.Tensor:
        """Return ``thoughts`` (B, N, d) as they are."""
        return thoughts
