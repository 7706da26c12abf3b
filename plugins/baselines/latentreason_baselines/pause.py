"""CoT with placeholder ("pause") tokens, plain and trainable.

``pause``: N placeholder tokens in the LLM input with their own embeddings
(the SoftCoT paper's CoT-UNK baseline). ``pause-trained``: N trainable
embeddings in their place (prompt tuning), initialised to the placeholder
embedding and trained by ``latentreason train`` like a projector.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from latentreason.plugin import PluginOptions, ThoughtProducer, Thoughts, placeholder_id


class PauseOptions(PluginOptions):
    """Options of the pause-token producers.

    Attributes:
        n_thoughts: placeholder tokens per question.
        placeholder_token: the token (default: an existing special token, the
            same one the placeholder injector uses).
    """

    n_thoughts: int = Field(4, gt=0)
    placeholder_token: str | None = None


class PauseTokens(ThoughtProducer):
    """N copies of the placeholder token's own LLM embedding ``(B, N, d_llm)``."""

    Options = PauseOptions
    options: PauseOptions

    @property
    def thought_dim(self) -> int:
        """The LLM's hidden size (no projection needed)."""
        return self.runtime.llm.hidden_size

    def _placeholder_embedding(self) -> torch.Tensor:
        llm = self.runtime.llm
        token = placeholder_id(llm.tokenizer, self.options.placeholder_token)
        with torch.no_grad():
            return llm.embed(torch.tensor([token], device=llm.model.device))[0].float()  # (d_llm,)

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Return the placeholder embedding N times per question."""
        vector = self._placeholder_embedding()
        return Thoughts(vectors=vector.expand(len(questions), self.options.n_thoughts, -1))  # (B, N, d_llm)


class TrainedPauseTokens(PauseTokens):
    """N trainable embeddings ``(N, d_llm)``, shared by all questions."""

    def __init__(self, options: PauseOptions, runtime) -> None:
        super().__init__(options, runtime)
        self._embeddings: nn.ParameterDict | None = None

    def trainable(self) -> nn.ParameterDict:
        """The embeddings, created from the placeholder embedding on first use."""
        if self._embeddings is None:
            start = self._placeholder_embedding().repeat(self.options.n_thoughts, 1)  # (N, d_llm)
            self._embeddings = nn.ParameterDict({"embeddings": nn.Parameter(start)})
        return self._embeddings

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Return the learned embeddings for every question."""
        embeddings = self.trainable()["embeddings"]  # (N, d_llm)
        return Thoughts(vectors=embeddings.unsqueeze(0).expand(len(questions), -1, -1))  # (B, N, d_llm)
