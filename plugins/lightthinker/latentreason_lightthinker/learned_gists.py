"""LightThinker's cache tokens: C trainable gist embeddings, the same after every segment."""

from __future__ import annotations

import math

import torch
from torch import nn

from latentreason.plugin import LoadedModel, placeholder_id

INIT_NOISE = 0.1
"""Noise of the initial gists relative to the LLM's mean embedding norm, so the C gists differ from the first step."""


class LearnedGists(nn.Module):
    """``embeddings`` ``(C, d_llm)``: input embeddings fed after each segment, in whose KV entries the LLM keeps it.

    They start as the LLM's placeholder-token embedding plus a little noise.

    Args:
        llm: the LLM (its placeholder embedding and embedding norm).
        count: gists per segment (C).
    """

    def __init__(self, llm: LoadedModel, count: int) -> None:
        super().__init__()
        with torch.no_grad():
            token = torch.tensor([placeholder_id(llm.tokenizer)], device=llm.model.device)
            base = llm.embed(token)[0].float()  # (d,)
            noise = (
                torch.randn(count, base.shape[0], device=base.device)
                * INIT_NOISE
                * llm.embed_norm
                / math.sqrt(base.shape[0])
            )
        self.embeddings = nn.Parameter(base + noise)  # (C, d)
