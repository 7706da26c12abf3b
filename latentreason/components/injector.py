"""Injector base: builds the LLM's input embeddings around the thoughts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from latentreason.config import PluginOptions

if TYPE_CHECKING:
    from latentreason.assembly.latent_prefix import LatentPrefix
    from latentreason.models.spec import LoadedModel

IGNORE_INDEX = -100


@dataclass
class LLMInputs:
    """A left-padded batch ready for the LLM.

    Attributes:
        inputs_embeds: ``(B, T, d_llm)``.
        attention_mask: ``(B, T)``, 0 on padding.
        labels: ``(B, T)`` token ids where supervised, :data:`IGNORE_INDEX`
            elsewhere; None outside training.
        prompts: the prompt of each row as text (placeholders shown as tokens), for logs.
        group: consecutive rows per example (a producer's thought sets).
        loss: an extra training-loss term from the producer, or None.
        thought_mask: ``(B, T)``, True at the positions that hold the thoughts,
            or None (no thoughts, or an injector that does not say); the
            thought audit reads the LLM's input and attention there.
        fixed_columns: how many leading columns no trainable part shapes (padding and
            the prompt before every row's first thought); training runs them
            without gradients where the LLM itself has nothing to train (0: none known).
        prefix: the latent prefix these rows continue (training a latent-prefix producer): its
            keys, values and hidden states stand for the first ``prefix.columns`` columns, which
            a teacher-forced pass does not compute again; None otherwise.
    """

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None
    prompts: list[str]
    group: int = 1
    loss: torch.Tensor | None = None
    thought_mask: torch.Tensor | None = None
    fixed_columns: int = 0
    prefix: LatentPrefix | None = None


class Injector(ABC):
    """Base class of injectors.

    Args:
        options: validated instance of the subclass's ``Options``.
        llm: the reasoning LLM (its tokenizer and embeddings).
    """

    Options: ClassVar[type[PluginOptions]] = PluginOptions

    def __init__(self, options: PluginOptions, llm: LoadedModel) -> None:
        self.options = options
        self.llm = llm

    @abstractmethod
    def build(
        self,
        instruction: str,
        questions: list[str],
        thoughts: torch.Tensor | None = None,
        hints: list[str] | None = None,
        targets: list[list[int]] | None = None,
    ) -> LLMInputs:
        """Build the LLM input for a batch.

        Args:
            instruction: the task's system prompt.
            questions: formatted questions, one per row.
            thoughts: projected soft thoughts ``(B, N, d_llm)``, or None.
            hints: text hints, one per row, or None.
            targets: token ids to append and supervise (training), or None.
        """
