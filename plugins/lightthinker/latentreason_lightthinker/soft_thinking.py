"""Soft Thinking (Zhang et al. 2025, arXiv 2505.15778): the LLM reads a mixture of token embeddings.

While a row is in soft mode, each step's input is the probability-weighted
mixture of the embeddings of its most probable tokens (top-k, then top-p
and min-p, after a temperature) instead of one drawn token's embedding; the
token recorded as written is the heaviest of the mixture. Soft mode ends for
good when the entropy of the step's distribution has stayed below a
threshold for a number of consecutive steps (the "cold stop"), after a
budget of soft steps, or once the row has written an end-of-thinking marker;
from then on the row decodes discrete tokens as configured. The noise
variants of later work (Wu et al. 2025, arXiv 2508.03440) perturb the
mixture's weights with Dirichlet or Gumbel-softmax noise from a seeded
generator. Training-free.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field

from latentreason.plugin import DecodeState, DecodingController, PluginOptions, Runtime


class SoftThinkingOptions(PluginOptions):
    """Options of Soft Thinking (defaults: the paper's recommended settings).

    Attributes:
        temperature: divides the logits before the softmax that gives the mixture's weights and the entropy.
        top_k: the mixture holds at most this many tokens, the most probable.
        top_p: of those (renormalised), the smallest set whose probability reaches ``top_p``.
        min_p: of those, tokens at least ``min_p`` times as probable as the most probable one.
        cold_stop_entropy: the cold stop's entropy threshold (nats); 0 turns the cold stop off.
        cold_stop_steps: consecutive steps below the threshold after which soft mode ends.
        max_soft_steps: soft mode ends after this many soft steps (None: no budget).
        end_marker: soft mode ends once the row has written this text's tokens
            (``</think>`` for thinking models; None: no marker).
        noise: ``none``, ``dirichlet`` (weights drawn from a Dirichlet with
            concentration ``dirichlet_alpha`` x weights) or ``gumbel``
            (Gumbel-softmax of the log weights at ``gumbel_temperature``).
        dirichlet_alpha: the Dirichlet noise's concentration scale.
        gumbel_temperature: the Gumbel-softmax temperature.
        seed: seeds the noise.
    """

    temperature: float = Field(0.6, gt=0)
    top_k: int = Field(10, ge=1)
    top_p: float = Field(0.95, gt=0, le=1)
    min_p: float = Field(0.001, ge=0, lt=1)
    cold_stop_entropy: float = Field(0.01, ge=0)
    cold_stop_steps: int = Field(256, ge=1)
    max_soft_steps: int | None = Field(None, ge=1)
    end_marker: str | None = Field("</think>", min_length=1)
    noise: Literal["none", "dirichlet", "gumbel"] = "none"
    dirichlet_alpha: float = Field(1.0, gt=0)
    gumbel_temperature: float = Field(0.5, gt=0)
    seed: int = 0


@dataclass
class _Row:
    """A row's soft-mode bookkeeping."""

    soft: bool = True
    low_entropy: int = 0  # consecutive soft steps with entropy below the cold-stop threshold


class SoftThinking(DecodingController):
    """Feeds each row a mixture of token embeddings until its soft mode ends."""

    Options = SoftThinkingOptions
    options: SoftThinkingOptions

    def __init__(self, options: SoftThinkingOptions, runtime: Runtime) -> None:
        super().__init__(options, runtime)
        self.rows: dict[Hashable, _Row] = {}  # by row key
        self.generator: torch.Generator | None = None  # made on the logits' device at the first noisy step

    def next_input(
        self, state: DecodeState, row: int, logits: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, int] | None:
        """The mixture of the row's likely tokens' embeddings and its heaviest token, while in soft mode."""
        key = state.keys[row]
        if not state.tokens[row]:  # the row's first step
            self.rows[key] = _Row()
        mode = self.rows[key]
        options = self.options
        if not mode.soft:
            return None
        probs = torch.softmax(logits.float() / options.temperature, dim=-1)  # (V,)
        entropy = float(-(probs * probs.clamp_min(1e-12).log()).sum())
        mode.low_entropy = mode.low_entropy + 1 if entropy < options.cold_stop_entropy else 0
        budget = options.max_soft_steps
        if mode.low_entropy >= options.cold_stop_steps or (budget is not None and len(state.soft_steps[row]) >= budget):
            mode.soft = False  # the cold stop, or the budget spent: this step's drawn token is fed
            return None
        weights, ids = self.mixture(probs)  # (k,), (k,)
        heaviest = ids[weights.argmax()]  # ()
        token = int(heaviest)
        llm = self.runtime.llm
        if self.marker and [*state.tokens[row], token][-len(self.marker) :] == self.marker:
            mode.soft = False  # the marker's last token is read as itself; discrete tokens from here on
            return llm.embed(heaviest).float(), token
        return weights @ llm.embed(ids).float(), token  # (k,) @ (k, d) -> (d,)

    def mixture(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's weights ``(k,)`` (summing to 1) and token ids ``(k,)`` from a distribution ``(V,)``."""
        options = self.options
        weights, ids = probs.topk(min(options.top_k, probs.shape[0]))  # (k,), sorted
        weights = weights / weights.sum()
        keep = (weights.cumsum(0) - weights < options.top_p) & (weights >= options.min_p * weights[0])  # (k,)
        weights, ids = weights[keep], ids[keep]
        weights = weights / weights.sum()
        if options.noise == "none":
            return weights, ids
        if self.generator is None:
            self.generator = torch.Generator(device=probs.device).manual_seed(options.seed)
        if options.noise == "dirichlet":
            # torch.distributions samples from the global generator only; a Dirichlet is normalised Gammas
            gamma = torch._standard_gamma(weights * options.dirichlet_alpha, generator=self.generator)  # (k,)
            return gamma / gamma.sum().clamp_min(1e-30), ids
        gumbel = -torch.empty_like(weights).exponential_(generator=self.generator).log()  # (k,) ~ Gumbel(0, 1)
        return torch.softmax((weights.log() + gumbel) / options.gumbel_temperature, dim=-1), ids

    @functools.cached_property
    def marker(self) -> list[int]:
        """The end-of-thinking marker's token ids (none without a marker)."""
        text = self.options.end_marker
        return self.runtime.llm.tokenizer.encode(text, add_special_tokens=False) if text is not None else []
