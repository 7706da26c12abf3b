"""The oracle control: SoftCoT whose assistant also reads the gold answer or rationale.

A positive control for the latent channel, never a method: it reads the gold
of the very example it answers, in training and at evaluation alike (that is
what makes it a ceiling). Everything else is SoftCoT's: the prompt, the
read-out, the projector and the training budget. If the LLM does not come
near its accuracy, the channel loses what the assistant knows; if even the
oracle does not beat zero-shot CoT, the thoughts lose the answer somewhere
between the assistant's states and the LLM's reading of them.
"""

from __future__ import annotations

from typing import Any, Literal

from latentreason.plugin import Example, LatentReasonError, Thoughts
from latentreason_softcot.producer import SoftCoTOptions, SoftCoTProducer

ANSWER_TEXT = "The correct final answer is {answer}."
"""What the assistant reads after the question with ``gold: answer``."""

RATIONALE_TEXT = "A correct solution:\n{rationale}"
"""What it reads with ``gold: rationale``: the example's rationale as its data hold it."""


class OracleOptions(SoftCoTOptions):
    """Options of the oracle control: SoftCoT's, plus which gold its assistant reads.

    Attributes:
        gold: ``answer`` (the gold final answer) or ``rationale`` (the gold
            worked solution as the data hold it; GSM8K's ends with the answer).
    """

    gold: Literal["answer", "rationale"] = "answer"


class OracleProducer(SoftCoTProducer):
    """SoftCoT's thoughts ``(B, N, d_assistant)`` from the question followed by its gold answer or rationale."""

    Options = OracleOptions
    options: OracleOptions
    control = "oracle: its assistant reads the gold of the example it answers"

    def told(self, examples: list[Example], questions: list[str]) -> list[str]:
        """Each question, then its example's gold (:data:`ANSWER_TEXT` or :data:`RATIONALE_TEXT`).

        Raises:
            LatentReasonError: ``gold: rationale`` and an example has no rationale.
        """
        if self.options.gold == "answer":
            return [f"{q}\n\n{ANSWER_TEXT.format(answer=ex.answer)}" for ex, q in zip(examples, questions)]
        missing = next((ex.id for ex in examples if ex.rationale is None), None)
        if missing is not None:
            raise LatentReasonError(
                f"softcot-oracle with gold: rationale reads each example's gold rationale, but example "
                f"{missing!r} has none (its task's data carry no rationales); use gold: answer."
            )
        return [f"{q}\n\n{RATIONALE_TEXT.format(rationale=ex.rationale)}" for ex, q in zip(examples, questions)]

    def produce_for(
        self, examples: list[Example], questions: list[str], *, instruction: str, training: bool = False
    ) -> Thoughts:
        """SoftCoT's thoughts from the questions told their gold (see :meth:`told`)."""
        return self.produce(self.told(examples, questions), instruction=instruction, training=training)

    def fit(self, examples: list[Example], questions: list[str], *, instruction: str, batch_size: int) -> None:
        """SoftCoT's statistics, on states that read the gold as at evaluation."""
        super().fit(examples, self.told(examples, questions), instruction=instruction, batch_size=batch_size)

    def fitted_from(self) -> dict[str, Any]:
        """SoftCoT's, and which gold the assistant reads (it changes the states' statistics)."""
        basis = super().fitted_from()
        return basis | {"gold": self.options.gold} if basis else basis
