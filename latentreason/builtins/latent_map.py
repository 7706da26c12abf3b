"""The ``latent-map`` projector: the trainable step map of a latent prefix (hidden state -> next input embedding).

``kind: mlp`` is CODI's projection (Shen et al. 2025): dropout, ``Linear(d, h)``,
GELU, ``Linear(h, d)``, then LayerNorm (``layer_norm``), PyTorch's default
initialisation. ``kind: linear`` is one ``Linear(d, d)`` that starts as the
identity, so an untrained map feeds the hidden state back unchanged (as
Coconut does) and training moves it from there. The ``identity`` projector
is the map without parameters.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from latentreason.components.projector import Projector
from latentreason.config import PluginOptions


class LatentMapOptions(PluginOptions):
    """Options of the latent-map projector.

    Attributes:
        kind: ``mlp`` (CODI's) or ``linear`` (starting as the identity).
        hidden: the MLP's hidden width (default: the LLM's hidden size).
        dropout: dropout before the MLP's first layer (training only).
        layer_norm: end the MLP with a LayerNorm, as CODI does.
    """

    kind: Literal["mlp", "linear"] = "mlp"
    hidden: int | None = Field(None, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    layer_norm: bool = True


class LatentMap(Projector):
    """``(B, N, d) -> (B, N, d)``: the map from the LLM's last hidden state to its next input embedding."""

    Options = LatentMapOptions
    options: LatentMapOptions

    def __init__(self, options: LatentMapOptions, d_in: int, d_out: int, embed_norm: float) -> None:
        super().__init__(options, d_in, d_out, embed_norm)
        self.net: nn.Module
        if options.kind == "linear":
            self.net = nn.Linear(d_in, d_out)
            with torch.no_grad():
                self.net.weight.copy_(torch.eye(d_out, d_in))
                self.net.bias.zero_()
        else:
            hidden = options.hidden or d_out
            layers: list[nn.Module] = [
                nn.Dropout(options.dropout),
                nn.Linear(d_in, hidden),
                nn.GELU(),
                nn.Linear(hidden, d_out),
            ]
            self.net = nn.Sequential(*layers, *([nn.LayerNorm(d_out)] if options.layer_norm else []))

    def forward(self, thoughts: torch.Tensor) -> torch.Tensor:
        """Map ``(B, N, d_in)`` to ``(B, N, d_out)``."""
        return self.net(thoughts)
