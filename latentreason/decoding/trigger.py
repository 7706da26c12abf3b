"""A trainable segment-boundary trigger: logistic regression on the LLM's hidden state.

A decoding controller with ``segment: classifier`` asks a :class:`BoundaryTrigger`
after every generated token whether the current segment ends there, from that
token's last-layer hidden state alone. The trigger is trained by
:func:`latentreason.training.trigger.train_trigger` (``latentreason
train-trigger``) and stored as safetensors under the ``trigger.`` prefix; its
metadata holds the LLM it was trained for, the label rule, the chosen
threshold and the validation metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentreason.errors import LatentReasonError
from latentreason.storage import load_weights, read_meta, save_weights

PREFIX = "trigger"


class BoundaryTrigger(nn.Module):
    """Standardised hidden state -> one logit: does a segment end at this token?

    Args:
        hidden_size: the LLM's hidden size (d_llm).
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(hidden_size))  # (d_llm,)
        self.register_buffer("std", torch.ones(hidden_size))  # (d_llm,)
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def standardise_on(self, features: torch.Tensor) -> None:
        """Set the standardisation from training features ``(N, d_llm)``."""
        self.mean.copy_(features.mean(dim=0))
        self.std.copy_(features.std(dim=0).clamp_min(1e-6))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``(...)`` for hidden states ``(..., d_llm)`` (any dtype or device; computed in float32 on the trigger's)."""
        hidden = hidden.to(self.mean.device, torch.float32)
        return self.linear((hidden - self.mean) / self.std).squeeze(-1)

    def probability(self, hidden: torch.Tensor) -> torch.Tensor:
        """Boundary probabilities ``(...)`` for hidden states ``(..., d_llm)``."""
        return torch.sigmoid(self(hidden))

    def save(self, path: str | Path, *, threshold: float, label: dict[str, Any], **info: Any) -> Path:
        """Write the trigger and its metadata atomically as safetensors.

        Args:
            path: the ``.safetensors`` file.
            threshold: the probability at or above which a segment ends.
            label: the segment rule the training labels came from (``SegmentOptions`` as a dict).
            info: more JSON-serialisable metadata (LLM, hidden size, validation metrics, ...).
        """
        return save_weights(path, {PREFIX: self}, {"threshold": threshold, "label": label, **info})

    @classmethod
    def load(cls, path: str | Path, hidden_size: int) -> tuple[BoundaryTrigger, dict[str, Any]]:
        """Load a trigger saved by :meth:`save` for an LLM of this hidden size.

        Raises:
            LatentReasonError: the file is missing, not safetensors, not a
                trigger, or made for another hidden size (the shapes are named).

        Returns:
            The trigger (on the CPU, in eval mode) and its metadata.
        """
        trigger = cls(hidden_size)
        meta = read_meta(path)
        try:
            load_weights(path, {PREFIX: trigger})
        except LatentReasonError as exc:
            made_for = f"It was trained on {meta['llm']} (hidden size {meta['hidden_size']}). " if "llm" in meta else ""
            raise LatentReasonError(
                f"{exc} {made_for}A boundary trigger must come from `latentreason train-trigger` with this run's LLM "
                f"(hidden size {hidden_size})."
            ) from None
        if "threshold" not in meta or "label" not in meta:
            raise LatentReasonError(
                f"{str(path)!r} has trigger weights but no threshold or label rule in its metadata; train it with `latentreason train-trigger`."
            )
        return trigger.eval(), meta
