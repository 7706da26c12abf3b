"""LightThinker-style compression with a frozen LLM.

After each segment of the chain of thought, the segment is compressed into C
*gist* vectors, which are fed through the LLM while the segment is still
visible (so their KV entries can carry what it said); then the segment's own
KV entries are dropped. Later tokens attend to the prompt, the earlier gists
and the current segment only.

Two compressors: ``pooling: mean`` (training-free: the segment's hidden states
mean-pooled into C chunks) and ``pooling: attention`` (C learned queries attend
over the segment; trained with ``latentreason train`` on the NLL of the gold
rationale given the compressed history of its earlier segments).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from latentreason.plugin import Boundaries, DecodeState, DecodingController, SegmentOptions
from latentreason_lightthinker.attention_pool import AttentionPool
from latentreason_lightthinker.pooling import pool_segment


class CompressOptions(SegmentOptions):
    """Options of compression.

    Attributes:
        gist_tokens: gist vectors per segment (C).
        pooling: ``mean`` (training-free) or ``attention`` (trainable).
    """

    gist_tokens: int = Field(2, gt=0)
    pooling: Literal["mean", "attention"] = "mean"


class Compress(DecodingController):
    """Replaces each finished segment's KV entries with C gist entries."""

    Options = CompressOptions
    options: CompressOptions

    def __init__(self, options: CompressOptions, runtime) -> None:
        super().__init__(options, runtime)
        self.boundaries = Boundaries(options, runtime.llm)
        self._pool: AttentionPool | None = None

    def trainable(self) -> AttentionPool | None:
        """The attention pool (created on first use), or None for mean pooling."""
        if self.options.pooling != "attention":
            return None
        if self._pool is None:
            llm = self.runtime.llm
            self._pool = AttentionPool(llm.hidden_size, self.options.gist_tokens, llm.embed_norm).to(llm.model.device)
        return self._pool

    def gists(self, hidden: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Gist vectors ``(C, d)`` for a segment's hidden states."""
        pool = self.trainable()
        if pool is None:
            return pool_segment(list(hidden), self.options.gist_tokens, self.runtime.llm.embed_norm)
        return pool(torch.stack(list(hidden)) if isinstance(hidden, list) else hidden)

    def after_token(self, state: DecodeState, rows: list[int]) -> None:
        """Compress the rows whose segment just ended."""
        for row in rows:
            if self.boundaries.ends(state, row):
                state.insert(row, self.gists(state.segment_hidden[row]))
                state.drop(row, state.segment[row])
                state.end_segment(row)

    def training_loss(self, pipeline, examples: list, targets: list[list[int]]) -> torch.Tensor | None:
        """NLL of each gold target, segment by segment, given the compressed history.

        Each example runs alone (batch of one) through the same cache rewriting
        as decoding: a segment is fed with teacher forcing, scored, compressed
        into gists, and dropped. Gradients reach the attention pool through
        the gists' KV entries.
        """
        if self.trainable() is None:
            return None
        llm = pipeline.runtime.llm
        total, count = 0.0, 0
        for example, target in zip(examples, targets):
            inputs = pipeline.inputs([example])
            state = DecodeState(llm, 1, inputs.inputs_embeds.device)
            last = state.forward(inputs.inputs_embeds, inputs.attention_mask)[:, -1]  # (1, d)
            for segment in self.boundaries.split(target, llm.tokenizer):
                hidden = state.feed_forced(segment)  # (S, d)
                predictors = torch.cat([last, hidden[:-1]])  # (S, d): token i is predicted from position i-1
                logits = llm.model.lm_head(predictors)  # (S, V)
                total = total + F.cross_entropy(
                    logits.float(), torch.tensor(segment, device=logits.device), reduction="sum"
                )
                count += len(segment)
                state.insert(0, self.gists(hidden))
                state.drop(0, state.segment[0])
                state.end_segment(0)
                last = state.apply(hidden[-1:])  # (1, d)
        return total / count
