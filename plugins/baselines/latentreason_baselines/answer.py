"""The answer-embedding control: the LLM's own embeddings of the gold answer in the thought slots.

A control, never a method: it reads each example's gold answer, so its score
is the ceiling of what the LLM takes from its thought slots under a given
injection framing, with no assistant, projector or training in the way (the
identity projector passes the vectors on unchanged). Its wrong-answer
variant is the run option ``thoughts_from: next``: the pipeline then hands it
the next example of the split (cyclically), so the slots hold another
question's answer in the same form.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator

from latentreason.plugin import Example, PluginOptions, ThoughtProducer, Thoughts


class AnswerEmbeddingOptions(PluginOptions):
    """Options of the answer-embedding control.

    Attributes:
        n_thoughts: thought slots per question. The templated text fills them
            token by token: a shorter text is padded by repeating its last
            token, a longer one keeps its last ``n_thoughts`` tokens (the
            answer ends the default template). The default, 8, holds the
            default template for answers of up to four digits on Qwen2.5.
        template: the text whose token embeddings fill the slots; ``{answer}``
            is replaced by the gold answer.
    """

    n_thoughts: int = Field(8, gt=0)
    template: str = " The answer is {answer}."

    @field_validator("template")
    @classmethod
    def _names_the_answer(cls, template: str) -> str:
        try:
            filled = template.format(answer="0")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"must be a format string whose only field is {{answer}} ({exc!r})") from exc
        if filled == template:
            raise ValueError("must contain {answer}, where the gold answer goes")
        return template


class AnswerEmbeddingControl(ThoughtProducer):
    """The LLM's token embeddings of ``template`` filled with each example's gold answer ``(B, N, d_llm)``."""

    Options = AnswerEmbeddingOptions
    options: AnswerEmbeddingOptions
    control = "its thought slots hold the LLM's own embeddings of the gold answer"

    @property
    def thought_dim(self) -> int:
        """The LLM's hidden size (its own embeddings, no projection needed)."""
        return self.runtime.llm.hidden_size

    def text(self, example: Example) -> str:
        """The text whose embeddings fill ``example``'s slots."""
        return self.options.template.format(answer=example.answer)

    def slot_ids(self, example: Example) -> list[int]:
        """The LLM token ids in ``example``'s ``n_thoughts`` slots (see :class:`AnswerEmbeddingOptions`)."""
        ids = self.runtime.llm.tokenizer(self.text(example), add_special_tokens=False)["input_ids"]
        n = self.options.n_thoughts
        return (ids + ids[-1:] * n)[:n] if len(ids) <= n else ids[-n:]

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Not available: the control reads gold answers, which questions alone do not carry (see :meth:`produce_for`)."""
        raise NotImplementedError("the answer-embedding control reads examples; call produce_for")

    def produce_for(
        self, examples: list[Example], questions: list[str], *, instruction: str, training: bool = False
    ) -> Thoughts:
        """Embed each example's templated gold answer with the LLM's own input embeddings."""
        llm = self.runtime.llm
        ids = torch.tensor([self.slot_ids(ex) for ex in examples], device=llm.model.device)  # (B, N)
        with torch.no_grad():
            return Thoughts(vectors=llm.embed(ids).float())  # (B, N, d_llm)
