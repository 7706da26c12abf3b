"""A trainable compressor: C learned queries attend over a segment's hidden states."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AttentionPool(nn.Module):
    """Pools ``(S, d)`` hidden states into ``(C, d)`` input vectors.

    Args:
        d: the LLM's hidden size.
        count: gist vectors per segment (C).
        norm: initial output norm (the LLM's mean token-embedding norm).
    """

    def __init__(self, d: int, count: int, norm: float) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(count, d) / math.sqrt(d))  # (C, d)
        self.keys = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d)
        nn.init.eye_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.log_norm = nn.Parameter(torch.tensor(math.log(norm)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Compress ``hidden`` ``(S, d)`` into ``(C, d)`` vectors of the learned norm."""
        hidden = F.normalize(hidden.float(), dim=-1)  # (S, d): last-layer states have large norms
        scores = self.queries @ self.keys(hidden).T / math.sqrt(hidden.shape[-1])  # (C, S)
        pooled = scores.softmax(dim=-1) @ hidden  # (C, d)
        return F.normalize(self.out(pooled), dim=-1) * self.log_norm.exp()
