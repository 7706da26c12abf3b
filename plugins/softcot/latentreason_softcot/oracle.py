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

from latentreason.plugin import Example, LatentReasonError
from latentreason_softcot.producer import SoftCoTOptions, SoftCoTProducer

GOLD_TEXT = {
    "answer": "The correct final answer is {answer}.",
    "rationale": "A correct solution:\n{rationale}",
}
"""What the assistant reads after the question, per ``gold`` variant."""


class OracleOptions(SoftCoTOptions):
    """Options of the oracle control: SoftCoT's, plus which gold its assistant reads.

    Attributes:
        gold: ``answer`` (the gold final answer) or ``rationale`` (the gold
            worked solution, which ends with the answer on GSM8K).
    """

    gold: Literal["answer", "rationale"] = "answer"


class OracleProducer(SoftCoTProducer):
    """SoftCoT's thoughts ``(B, N, d_assistant)`` from the question followed by its gold answer or rationale."""

    Options = OracleOptions
    options: OracleOptions
    control = "oracle: its assistant reads the gold of the example it answers"

    def reads(self, question: str, example: Example) -> str:
        """The question, then the example's gold (see :data:`GOLD_TEXT`).

        Raises:
            LatentReasonError: ``gold: rationale`` and the example has none.
        """
        if self.options.gold == "rationale" and example.rationale is None:
            raise LatentReasonError(
                f"softcot-oracle with gold: rationale reads each example's gold rationale, but example "
                f"{example.id!r} has none (its task's data carry no rationales); use gold: answer."
            )
        gold = GOLD_TEXT[self.options.gold].format(answer=example.answer, rationale=example.rationale)
        return f"{question}\n\n{gold}"

    def fitted_from(self) -> dict[str, Any]:
        """SoftCoT's, and which gold the assistant reads (it changes the states' statistics)."""
        basis = super().fitted_from()
        return basis | {"gold": self.options.gold} if basis else basis
