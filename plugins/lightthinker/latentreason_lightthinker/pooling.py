"""Training-free pooling of a segment's hidden states into a few input vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pool_segment(hidden: list[torch.Tensor], count: int, norm: float) -> torch.Tensor:
    """Mean-pool a segment's hidden states into ``count`` vectors ``(count, d)``.

    The segment is cut into ``count`` contiguous chunks (as equal as possible)
    and each chunk is averaged; the vectors are then given the LLM's mean
    token-embedding norm, since last-layer hidden states live on another scale.

    Args:
        hidden: the segment's last-layer hidden states, each ``(d,)``.
        count: vectors to produce (at most one per token).
        norm: target L2 norm of each vector.
    """
    states = torch.stack(hidden)  # (n, d)
    chunks = states.tensor_split(min(count, states.shape[0]))
    pooled = torch.stack([c.mean(dim=0) for c in chunks])  # (count, d)
    return F.normalize(pooled.float(), dim=-1) * norm
