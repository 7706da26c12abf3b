"""SoftCoT++ (Xu et al. 2025): several soft-thought sets per question, voted.

SoftCoT++ scales SoftCoT at test time in the latent space. The assistant's
placeholder positions get K sets of trainable *specialised initial
embeddings* instead of the placeholder token's embedding, so one question
gives K different sets of soft thoughts; the LLM writes one chain from each
and the answers are majority-voted. A contrastive term in training pushes the
K sets of the same question apart.

Differences from the reference code (see docs/decisions.md):

- the assistant runs *with* gradients in training, so the initial embeddings
  actually learn (the assistant's own parameters stay frozen);
- the contrastive term is computed per question, so batches of several
  questions are right.

The contrastive term uses the raw soft thoughts (the assistant's space, before
the projector): the sets themselves must differ, rather than a projector
shared by all sets learning to magnify small differences.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from latentreason.plugin import Thoughts
from latentreason_softcot.producer import SoftCoTOptions, SoftCoTProducer

INIT_NOISE = 0.1
"""Noise of the initial embeddings, relative to the assistant's mean embedding norm.

Every initial embedding is the placeholder token's embedding plus Gaussian
noise whose expected L2 norm is about ``INIT_NOISE`` times the assistant's
mean token-embedding norm, drawn independently per set and position, so the
K sets differ from the first step (identical sets would get identical
gradients and never separate).
"""


class SoftCoTPPOptions(SoftCoTOptions):
    """Options of the SoftCoT++ producer: SoftCoT's (``standardise`` apart), plus the thought sets.

    Attributes:
        sets: thought sets per question (K); the LLM writes K chains, which are voted.
        contrastive_weight: weight of the contrastive term added to the NLL in
            training (0 disables it).
        temperature: temperature of the contrastive logits.
        centre: subtract each question's mean over its K sets before the
            cosine, so the direction that all of the assistant's hidden states
            share does not make every set look alike (needs K >= 3: two
            centred sets are always opposite).
    """

    sets: int = Field(4, ge=1)
    contrastive_weight: float = Field(0.1, ge=0)
    temperature: float = Field(0.1, gt=0)
    centre: bool = False

    @model_validator(mode="after")
    def _centre_needs_three_sets(self) -> SoftCoTPPOptions:
        if self.centre and self.sets < 3:
            raise ValueError(f"centre needs at least 3 sets (got {self.sets}): two centred sets are always opposite")
        return self

    @model_validator(mode="after")
    def _no_standardise(self) -> SoftCoTPPOptions:
        if self.standardise:
            raise ValueError(
                "standardise is SoftCoT's only: SoftCoT++'s states move with its learned initial embeddings "
                "in training, so statistics fitted before training would not describe them"
            )
        return self

    @model_validator(mode="after")
    def _placeholders_in_turn(self) -> SoftCoTPPOptions:
        if self.read_at != "turn":
            raise ValueError(
                f"read_at={self.read_at!r} is SoftCoT's only: SoftCoT++ learns the embeddings of the placeholders "
                "that end the assistant's turn (read_at: turn)"
            )
        return self


def contrastive_loss(thoughts: torch.Tensor, sets: int, temperature: float, centre: bool = False) -> torch.Tensor:
    """Per-question contrastive loss that tells each thought set from the others.

    For question ``b`` and set ``k``, ``z_k`` is the L2-normalised mean of the
    set's thoughts (after subtracting the question's mean over its sets when
    ``centre``); the logits are ``S_jk = cos(z_j, z_k) / temperature`` over
    the K sets of that question only, and the loss is the cross-entropy of
    ``S`` against ``arange(K)``. Sets of different questions are never compared.

    Args:
        thoughts: soft thoughts ``(B*K, N, d)``, rows grouped per question.
        sets: K.
        temperature: tau.
        centre: remove the component the question's sets share first.

    Returns:
        The mean over questions of each question's loss (a scalar).
    """
    means = thoughts.mean(dim=1).view(-1, sets, thoughts.shape[-1])  # (B, K, d)
    if centre:
        means = means - means.mean(dim=1, keepdim=True)  # (B, K, d): what tells the sets apart
    z = F.normalize(means, dim=-1)  # (B, K, d)
    logits = z @ z.transpose(1, 2) / temperature  # (B, K, K)
    labels = torch.arange(sets, device=z.device).repeat(z.shape[0])  # (B*K,)
    # Every question has K rows, so the mean over all rows is the mean over questions.
    return F.cross_entropy(logits.reshape(-1, sets), labels)


class SoftCoTPPProducer(SoftCoTProducer):
    """K sets of soft thoughts ``(B*K, N, d_assistant)`` from learned initial embeddings.

    For each question the assistant reads K rows of instruction, question and
    N placeholder positions whose input embeddings are set k's first N
    initial embeddings. Its last-layer hidden states there are set k's soft
    thoughts; rows ``b*K .. b*K+K-1`` belong to question ``b``.

    The assistant is causal, so a thought depends only on what precedes it:
    for the same prompt, the first 4 thoughts are the same whether 4 or 32
    placeholders follow. Training with ``n_thoughts_train`` placeholders thus
    trains the first ``n_thoughts`` initial embeddings exactly as they are used
    at evaluation (when the instruction does not name the count ``{n}``).
    """

    Options = SoftCoTPPOptions
    options: SoftCoTPPOptions

    def __init__(self, options: SoftCoTPPOptions, runtime) -> None:
        super().__init__(options, runtime)
        self._initial: nn.ParameterDict | None = None

    def default_checkpoint(self) -> Path | None:
        """None: nothing is shipped (a SoftCoT++ checkpoint also holds the initial embeddings)."""
        return None

    def trainable(self) -> nn.ParameterDict:
        """``{"initial": (K, N_max, d_assistant)}``, created on first use (see :data:`INIT_NOISE`).

        ``N_max`` is the larger of ``n_thoughts`` and ``n_thoughts_train``.
        """
        if self._initial is None:
            assistant = self.runtime.assistant
            sets, width = self.options.sets, max(self.options.n_thoughts, self.options.n_thoughts_train or 0)
            with torch.no_grad():
                token = torch.tensor([self._placeholder], device=assistant.model.device)
                base = assistant.embed(token)[0].float()  # (d_assistant,)
                scale = INIT_NOISE * assistant.embed_norm / math.sqrt(base.shape[0])  # per-coordinate std
                noise = torch.randn(sets, width, base.shape[0], device=base.device) * scale  # (K, N_max, d_assistant)
            self._initial = nn.ParameterDict({"initial": nn.Parameter(base + noise)})
        return self._initial

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Run the assistant over K rows per question; in training also return the contrastive term.

        In training the forward pass keeps gradients (when enabled), which reach
        the initial embeddings through the frozen assistant.
        """
        n, sets = self._count(training), self.options.sets
        input_ids, attention_mask, _ = self._encode(questions, n)  # (B, T), (B, T); read_at: turn, so the last n
        with torch.set_grad_enabled(training and torch.is_grad_enabled()):
            initial = self.trainable()["initial"][:, :n]  # (K, N, d_assistant)
            prompt = self.runtime.assistant.embed(input_ids[:, :-n])  # (B, T-N, d_assistant), frozen
            slots = initial.to(prompt.dtype).repeat(len(questions), 1, 1)  # (B*K, N, d_assistant): row b*K+k is set k
            embeds = torch.cat([prompt.repeat_interleave(sets, dim=0), slots], dim=1)  # (B*K, T, d_assistant)
            hidden = self._hidden(
                attention_mask.repeat_interleave(sets, dim=0), inputs_embeds=embeds
            )  # (B*K, T, d_assistant)
            vectors = hidden[:, -n:, :].float()  # (B*K, N, d_assistant)
            loss = None
            if training and self.options.contrastive_weight > 0:
                loss = self.options.contrastive_weight * contrastive_loss(
                    vectors, sets, self.options.temperature, self.options.centre
                )
        return Thoughts(vectors=vectors, sets=sets, loss=loss)
