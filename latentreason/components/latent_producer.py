"""The base of methods whose thoughts are the LLM's own states before it writes (Coconut, CODI)."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from latentreason.components.producer import ThoughtProducer, Thoughts


class LatentPrefixProducer(ThoughtProducer):
    """A producer that asks for a latent prefix of :meth:`latent_steps` thoughts (``Thoughts.latent_steps``).

    The pipeline fills the K thought slots with the LLM's own states, each its
    last hidden state through the run's projector, the step map
    (:mod:`latentreason.assembly.latent_prefix`): ``identity`` by default,
    ``latent-map`` for a trainable one. Training trains the map and the LLM's
    adapter through all K steps; either engine decodes the text after them.
    Subclasses implement :meth:`latent_steps` and may rewrite the training
    targets (:meth:`ThoughtProducer.train_targets`).
    """

    default_projector: ClassVar[str] = "identity"

    @property
    def thought_dim(self) -> int:
        """The LLM's hidden size: the step map reads its hidden states."""
        return self.runtime.llm.hidden_size

    @abstractmethod
    def latent_steps(self, training: bool) -> int:
        """K, the latent thoughts before the LLM writes (at least 1), in training or at evaluation."""

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Ask for a latent prefix of K steps for every question."""
        return Thoughts(latent_steps=self.latent_steps(training))
