"""Projector base: maps soft thoughts into the LLM's input-embedding space."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from latentreason.config import PluginOptions
from latentreason.errors import LatentReasonError


class Projector(nn.Module):
    """Base class of projectors: ``(B, N, d_in) -> (B, N, d_out)``.

    Args:
        options: validated instance of the subclass's ``Options``.
        d_in: width of the producer's thoughts.
        d_out: the LLM's hidden size.
        embed_norm: mean L2 norm of the LLM's token embeddings, the scale
            injected vectors should have.
    """

    Options: ClassVar[type[PluginOptions]] = PluginOptions

    def __init__(self, options: PluginOptions, d_in: int, d_out: int, embed_norm: float) -> None:
        super().__init__()
        self.options = options
        self.d_in = d_in
        self.d_out = d_out
        self.embed_norm = embed_norm


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
