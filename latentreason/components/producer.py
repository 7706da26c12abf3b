"""Thought producer base: what a method contributes before the LLM writes.

A producer turns a batch of questions into :class:`Thoughts`: soft vectors to
be projected and spliced into the LLM's input, text hints for its prompt, or
nothing at all (plain chain of thought).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from latentreason.components.example import Example
from latentreason.config import PluginOptions

if TYPE_CHECKING:
    from latentreason.models.runtime import Runtime


@dataclass
class Thoughts:
    """What a producer made for one batch.

    Attributes:
        vectors: soft thoughts ``(B*sets, N, d_source)`` or None.
        hints: one text hint per row for the LLM prompt, or None.
        sets: thought sets per question. Rows of ``vectors`` and ``hints`` are
            grouped per question: rows ``b*sets .. b*sets+sets-1`` belong to
            question ``b``, and the LLM writes one chain for each.
        loss: an extra training-loss term the producer adds to the NLL
            (e.g. SoftCoT++'s contrastive term), or None.
        latent_steps: K > 0 asks for a latent prefix instead of ``vectors``:
            K thought slots that the LLM fills with its own states, each its
            last hidden state through the projector
            (:mod:`latentreason.assembly.latent_prefix`).
    """

    vectors: torch.Tensor | None = None
    hints: list[str] | None = None
    sets: int = 1
    loss: torch.Tensor | None = None
    latent_steps: int = 0

    @property
    def count(self) -> int:
        """Number of soft thoughts per question (0 without vectors or a latent prefix)."""
        return self.latent_steps if self.vectors is None else self.vectors.shape[1]


class ThoughtProducer(ABC):
    """Base class of thought producers.

    Subclasses set ``Options`` if they take options, ``default_projector`` to
    the projector they expect (``"identity"`` if their vectors already live in
    the LLM's embedding space), and implement :meth:`produce`. A control that
    reads more of each example than its question (e.g. its gold answer)
    overrides :meth:`produce_for` instead. A control (a ceiling or a floor for
    the methods, never a method itself) sets ``control`` to what makes it one;
    reports label its rows with it.

    Args:
        options: validated instance of ``Options``.
        runtime: gives access to the models (loaded on first use).
    """

    Options: ClassVar[type[PluginOptions]] = PluginOptions
    default_projector: ClassVar[str] = "identity"
    control: ClassVar[str | None] = None

    def __init__(self, options: PluginOptions, runtime: Runtime) -> None:
        self.options = options
        self.runtime = runtime

    @property
    def thought_dim(self) -> int | None:
        """Width of the produced vectors, or None if this producer makes none."""
        return None

    @abstractmethod
    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Produce thoughts for a batch of formatted questions.

        Args:
            questions: the task-formatted questions, one per example.
            instruction: the task's system prompt for the LLM.
            training: True inside the trainer (producers may then use a
                different number of thoughts).
        """

    def produce_for(
        self, examples: list[Example], questions: list[str], *, instruction: str, training: bool = False
    ) -> Thoughts:
        """Produce thoughts for a batch of examples; what the pipeline calls.

        By default :meth:`produce` on their questions. Controls that read the
        examples' gold answers override it; with ``thoughts_from: next`` the
        pipeline passes the next examples of the split, so such a control then
        reads another question's answer.

        Args:
            examples: the examples the thoughts are made from.
            questions: the same examples, formatted by the task.
            instruction: the task's system prompt for the LLM.
            training: True inside the trainer.
        """
        return self.produce(questions, instruction=instruction, training=training)

    def train_targets(self, examples: list[Example], targets: list[str]) -> list[str]:
        """The texts training supervises after the prompt, one per example; by default the task's.

        A method that trains on part of the rationale (Coconut's curriculum
        drops the steps its latent thoughts replace) or on the answer alone
        rewrites them here. Training calls it once with every training and
        validation example, so it may also refuse data it cannot train on.

        Args:
            examples: the training and validation examples.
            targets: the task's target of each (:meth:`TaskSpec.target_text`:
                the rationale, then the final-answer line).
        """
        return targets

    def training_loss(self, pipeline, examples: list[Example], targets: list[list[int]]) -> torch.Tensor | None:
        """The loss to train with, for a method whose loss is more than the NLL of its targets (CODI); None: that NLL.

        Args:
            pipeline: the method (its inputs, models and task).
            examples: the batch.
            targets: their gold token ids (after :meth:`train_targets`).
        """
        return None

    def default_checkpoint(self) -> Path | None:
        """Trained weights to use when the run names none (e.g. shipped for the default models).

        The pipeline loads them only if they were made for the same models,
        producer and projector.
        """
        return None

    def trainable(self) -> nn.Module | None:
        """The producer's own trainable parameters (e.g. learned embeddings) and fitted buffers, if any."""
        return None

    def fitted_from(self) -> dict[str, Any]:
        """What the producer's fitted state depends on (e.g. the assistant, the read-out layer); empty: it fits nothing.

        A producer that returns something here implements :meth:`fit` and
        keeps what it fits as buffers of :meth:`trainable`, so checkpoints
        store it. The pipeline stores this dict beside it and refuses a
        checkpoint whose fitted state depends on other values.
        """
        return {}

    def fit(self, examples: list[Example], questions: list[str], *, instruction: str, batch_size: int) -> None:
        """Fit the state the producer learns from data without gradients (e.g. statistics of its vectors).

        ``latentreason train`` calls it once before the first step, with the
        training examples (never validation or test examples), unless a
        checkpoint gave the state.

        Args:
            examples: the training examples (what :meth:`produce_for` gets).
            questions: the same examples, formatted by the task.
            instruction: the task's system prompt for the LLM.
            batch_size: examples to read at once.
        """
        raise NotImplementedError(f"{type(self).__name__} fits nothing (its fitted_from() is empty)")
