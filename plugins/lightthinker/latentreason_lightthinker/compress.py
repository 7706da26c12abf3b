"""LightThinker-style compression with a frozen LLM.

After each segment of the chain of thought, the segment is compressed into C
*gist* vectors, which are fed through the LLM while the segment is still
visible (so their KV entries can carry what it said); then the segment's own
KV entries are dropped. Later tokens attend to the prompt, the earlier gists
and the current segment only.

Three kinds of gists:

* ``pooling: mean`` (training-free): the segment's hidden states mean-pooled into C chunks;
* ``pooling: attention``: C learned queries attend over the segment; trained
  with ``latentreason train`` on the NLL of the gold rationale given the
  compressed history of its earlier segments, segment by segment;
* ``pooling: learned`` (LightThinker as published): C trainable gist
  embeddings, the same after every segment; the LLM itself learns to write a
  segment into the gists' KV entries, which needs a trainable LLM (an
  ``adapter``). It trains in one teacher-forced forward per batch under
  LightThinker's attention mask (:mod:`latentreason_lightthinker.gist_mask`),
  which hides from every token exactly what decoding drops.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from latentreason.plugin import Boundaries, DecodeState, DecodingController, SegmentOptions
from latentreason_lightthinker.attention_pool import AttentionPool
from latentreason_lightthinker.gist_mask import IGNORED, attention_mask, lay_out, visible
from latentreason_lightthinker.learned_gists import LearnedGists
from latentreason_lightthinker.pooling import pool_segment


class CompressOptions(SegmentOptions):
    """Options of compression.

    Attributes:
        gist_tokens: gist vectors per segment (C).
        pooling: ``mean`` (training-free), ``attention`` (a trainable pool)
            or ``learned`` (trainable gist embeddings, LightThinker's cache tokens).
    """

    gist_tokens: int = Field(2, gt=0)
    pooling: Literal["mean", "attention", "learned"] = "mean"


class Compress(DecodingController):
    """Replaces each finished segment's KV entries with C gist entries."""

    Options = CompressOptions
    options: CompressOptions

    def __init__(self, options: CompressOptions, runtime) -> None:
        super().__init__(options, runtime)
        self.boundaries = Boundaries(options, runtime.llm)
        self._module: AttentionPool | LearnedGists | None = None

    def trainable(self) -> AttentionPool | LearnedGists | None:
        """The attention pool or the learned gists (created on first use), or None for mean pooling."""
        if self.options.pooling == "mean":
            return None
        if self._module is None:
            llm, count = self.runtime.llm, self.options.gist_tokens
            module = (
                AttentionPool(llm.hidden_size, count, llm.embed_norm)
                if self.options.pooling == "attention"
                else LearnedGists(llm, count)
            )
            self._module = module.to(llm.model.device)
        return self._module

    def gists(self, hidden: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Gist vectors ``(C, d)`` for a segment's hidden states (learned gists ignore them)."""
        module = self.trainable()
        if module is None:
            return pool_segment(list(hidden), self.options.gist_tokens, self.runtime.llm.embed_norm)
        if isinstance(module, LearnedGists):
            return module.embeddings
        return module(torch.stack(list(hidden)) if isinstance(hidden, list) else hidden)

    def after_token(self, state: DecodeState, rows: list[int]) -> None:
        """Compress the rows whose segment just ended."""
        for row in rows:
            if self.boundaries.ends(state, row):
                state.insert(row, self.gists(state.segment_hidden[row]))
                state.drop(row, state.segment[row])
                state.end_segment(row)

    def training_loss(self, pipeline, examples: list, targets: list[list[int]]) -> torch.Tensor | None:
        """NLL of each gold target given the compressed history of its earlier segments.

        Learned gists train in one masked forward per batch (:meth:`masked_loss`);
        an attention pool, whose gists depend on the segment's hidden states,
        segment by segment (:meth:`stepwise_loss`). Mean pooling has nothing to train.
        """
        module = self.trainable()
        if module is None:
            return None
        if isinstance(module, LearnedGists):
            return self.masked_loss(pipeline, examples, targets)
        return self.stepwise_loss(pipeline, examples, targets)

    def masked_loss(self, pipeline, examples: list, targets: list[list[int]]) -> torch.Tensor:
        """Mean NLL of the targets in one forward under LightThinker's mask (:mod:`.gist_mask`).

        Gradients reach the learned gists, the LLM's adapter and any producer
        or projector that made the prompt's thoughts.
        """
        llm = pipeline.runtime.llm
        gists = self.gists([])  # (C, d)
        inputs = pipeline.inputs(examples, training=True)  # the prompts, with the method's thoughts
        rows, masks, labels = [], [], []
        for b, target in enumerate(targets):
            prompt = inputs.inputs_embeds[b][inputs.attention_mask[b].bool()]  # (P, d)
            layout = lay_out(prompt.shape[0], self.boundaries.split(target, llm.tokenizer), gists.shape[0])
            kinds = torch.tensor(layout.kinds)  # (T,)
            embeds = prompt.new_zeros(len(layout.kinds), prompt.shape[-1])  # (T, d)
            embeds[: prompt.shape[0]] = prompt
            tokens = torch.tensor(layout.tokens)  # (T,)
            at_tokens = tokens >= 0
            embeds[at_tokens] = llm.embed(tokens[at_tokens].to(embeds.device)).to(embeds.dtype)
            for k in set((-kinds[kinds < 0]).tolist()):  # every segment but the last has its gists
                embeds[kinds == -k] = gists.to(embeds.dtype)
            rows.append(embeds)
            masks.append(visible(kinds))
            labels.append(torch.tensor(layout.labels))
        width = max(r.shape[0] for r in rows)
        embeds = torch.stack([torch.cat([r.new_zeros(width - r.shape[0], r.shape[1]), r]) for r in rows])  # (B, T, d)
        label = torch.stack([torch.cat([y.new_full((width - len(y),), IGNORED), y]) for y in labels]).to(
            embeds.device
        )  # (B, T)
        positions = (
            torch.stack([torch.arange(width) - (width - r.shape[0]) for r in rows]).clamp_min(0).to(embeds.device)
        )  # (B, T)
        implementation = getattr(llm.model.config, "_attn_implementation", "sdpa")
        mask = attention_mask(masks, implementation, embeds.dtype).to(embeds.device)  # (B, 1, T, T)
        hidden = llm.model.base_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False
        ).last_hidden_state  # (B, T, d)
        supervised = label != IGNORED
        logits = llm.model.lm_head(hidden[supervised])  # (M, V)
        return F.cross_entropy(logits.float(), label[supervised])

    def stepwise_loss(self, pipeline, examples: list, targets: list[list[int]]) -> torch.Tensor:
        """Mean NLL of the targets, segment by segment, through the same cache rewriting as decoding.

        Each example runs alone (batch of one): a segment is fed with teacher
        forcing, scored, compressed into gists, and dropped. Gradients reach
        the compressor through the gists' KV entries.
        """
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
