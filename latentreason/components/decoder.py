"""Decoding-controller base: a plugin that steers the KV cache while the LLM writes.

See :mod:`latentreason.decoding.loop` for when it is called and
:class:`~latentreason.decoding.state.DecodeState` for what it may do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from latentreason.config import PluginOptions

if TYPE_CHECKING:
    from latentreason.decoding.state import DecodeState
    from latentreason.models.runtime import Runtime


class DecodingController:
    """Base class of decoding-time plugins (registered with ``latentreason_decoders``).

    Args:
        options: validated instance of the subclass's ``Options``.
        runtime: the models.
    """

    Options: ClassVar[type[PluginOptions]] = PluginOptions

    def __init__(self, options: PluginOptions, runtime: Runtime) -> None:
        self.options = options
        self.runtime = runtime

    def after_token(self, state: DecodeState, rows: list[int]) -> None:
        """Called after each step with the rows that generated a token; may insert and drop."""

    def trainable(self) -> nn.Module | None:
        """Trainable parameters of the controller, if any."""
        return None

    def training_loss(self, pipeline, examples: list, targets: list[list[int]]) -> torch.Tensor | None:
        """The loss to train :meth:`trainable` with, or None to use the plain supervised loss."""
        return None
