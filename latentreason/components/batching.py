"""Small tensor helpers for left-padded batches."""

from __future__ import annotations

import torch


def pad_left(rows: list[list[int]], value: int) -> torch.Tensor:
    """Left-pad integer rows into a ``(B, T)`` tensor."""
    width = max(len(r) for r in rows)
    return torch.tensor([[value] * (width - len(r)) + r for r in rows], dtype=torch.long)


def pad_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded token ids ``(B, T)`` and their attention mask ``(B, T)``."""
    return pad_left(rows, pad_id), pad_left([[1] * len(r) for r in rows], 0)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions ``(B, T)`` that start at 0 on each row's first real token.

    A plain forward pass numbers positions from the start of the padded row;
    passing these keeps left-padded rows identical to unpadded ones.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
