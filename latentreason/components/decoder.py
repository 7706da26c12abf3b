"""Decoding-controller base: a plugin that steers the LLM's input and KV cache while the LLM writes.

See :mod:`latentreason.decoding.loop` for when it is called and
:class:`DecodingState` for what it may do (the decoding layer's
:class:`~latentreason.decoding.state.DecodeState` is the batch the loop hands it).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch
from torch import nn

from latentreason.config import PluginOptions

if TYPE_CHECKING:
    from latentreason.models.runtime import Runtime
    from latentreason.models.spec import LoadedModel


class DecodingState(Protocol):
    """The batch being decoded, as a controller sees it (the decoding loop's ``DecodeState`` is one).

    Row indices are valid for one step. Attributes: ``llm``; ``keys`` (each
    row's label); ``tokens`` (generated ids per row); ``live``, ``generated``
    and ``segment``: ``(B, L)`` bool masks of the cache columns each row sees,
    that hold generated tokens, and of its current segment; ``segment_hidden``
    (per row, the last layer's ``(d,)`` hidden states of the current segment's
    tokens); ``segment_tokens`` (tokens in the current segment per row);
    ``soft_steps`` (per row, the steps whose input a controller chose).
    """

    llm: LoadedModel
    keys: list[Hashable]
    tokens: list[list[int]]
    live: torch.Tensor
    generated: torch.Tensor
    segment: torch.Tensor
    segment_hidden: list[list[torch.Tensor]]
    segment_tokens: list[int]
    soft_steps: list[list[int]]

    def segment_text(self, row: int) -> str:
        """The text of ``row``'s current segment."""
        ...

    def insert(self, row: int, vectors: torch.Tensor) -> None:
        """Feed ``vectors`` ``(C, d_llm)`` to the LLM for ``row`` before its next token."""
        ...

    def drop(self, row: int, columns: torch.Tensor, *, before_insert: bool = False) -> None:
        """Hide cache ``columns`` (a ``(L,)`` bool mask) from ``row`` from now on."""
        ...

    def end_segment(self, row: int) -> None:
        """Start a new segment for ``row``."""
        ...


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

    def next_input(
        self, state: DecodingState, row: int, logits: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, int] | None:
        """Choose what ``row`` reads at its next position, instead of the embedding of the token drawn.

        Called at every step for every row still writing, after the step's
        token is drawn and before anything is fed or recorded
        (``state.tokens[row]`` holds the tokens written before this step).
        The vector returned is fed at the row's next position, in the same
        forward pass as the other rows' tokens, so a soft step takes one
        position and one forward like any token; it is a generated column of
        the row's current segment (with a ``segment_hidden`` entry) and
        :meth:`after_token` sees it like any token.

        Args:
            state: the batch being decoded.
            row: the row.
            logits: ``(V,)`` float logits the token is drawn from: the LM head's
                output (with any final soft-capping) and the ``min_new_tokens``
                mask, before the run's temperature and top-p.
            hidden: ``(d_llm,)`` the last layer's hidden state at the position
                that produced ``logits``, after the model's final norm (the
                LM head's input).

        Returns:
            None to feed the drawn token as usual, or ``(vector, token)``: the
            ``(d_llm,)`` input embedding to feed (any float dtype; it is cast to
            the LLM's) and the token recorded as written at this step. The token
            counts like any written token (its text, end of turn, the answer
            stop and the token cap) and the step is marked soft in the results
            (``Generated.soft_steps``).
        """
        return None

    def after_token(self, state: DecodingState, rows: list[int]) -> None:
        """Called after each step with the rows that generated a token; may insert and drop."""

    def trainable(self) -> nn.Module | None:
        """Trainable parameters of the controller, if any."""
        return None

    def training_loss(self, pipeline, examples: list, targets: list[list[int]]) -> torch.Tensor | None:
        """The loss to train :meth:`trainable` with, or None to use the plain supervised loss."""
        return None
