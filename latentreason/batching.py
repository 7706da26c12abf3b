"""Small tensor helpers for left-padded batches."""

from __future__ import annotations

import torch


def pad_left(rows: list[list[int]], value: int) -> torch.Tensor:
    """Left-pad integer rows into a ``(B, T)`` tensor."""
    width = max(len(r) for r in rows)
    return torch.tensor([[value] * (width - len(r)) + r for r in rows], dtype=torch.long)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions ``(B, T)`` that start at 0 on each row's first real token.

    A plain forward pass numbers positions from the start of the padded row;
    passing these keeps left-padded rows identical to unpadded ones.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
