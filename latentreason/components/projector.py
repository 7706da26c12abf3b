"""Projector base: maps soft thoughts into the LLM's input-embedding space."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from latentreason.config import PluginOptions


class Projector(nn.Module, metaclass=ABCMeta):
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

    @abstractmethod
    def forward(self, thoughts: torch.Tensor) -> torch.Tensor:
        """Map thoughts ``(B, N, d_in)`` to vectors ``(B, N, d_out)``."""
