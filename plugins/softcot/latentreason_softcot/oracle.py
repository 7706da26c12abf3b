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

from latentreason.plugin import Example, LatentReasonError, TaskSpec
from latentreason_softcot.producer import SoftCoTOptions, SoftCoTProducer

ANSWER_TEXT = "The correct final answer is {answer}."
"""What the assistant reads after the question with ``gold: answer``."""

RATIONALE_TEXT = "A correct solution:\n{target}"
"""What it reads with ``gold: rationale``: the task's training target (the cleaned rationale and the boxed answer)."""


class OracleOptions(SoftCoTOptions):
    """Options of the oracle control: SoftCoT's, plus which gold its assistant reads.

    Attributes:
        gold: ``answer`` (the gold final answer) or ``rationale`` (the gold
            worked solution as the method is trained to write it, ending
            with the boxed answer).
    """

    gold: Literal["answer", "rationale"] = "answer"


class OracleProducer(SoftCoTProducer):
    """SoftCoT's thoughts ``(B, N, d_assistant)`` from the question followed by its gold answer or rationale."""

    Options = OracleOptions
    options: OracleOptions
    control = "oracle: its assistant reads the gold of the example it answers"

    def reads(self, task: TaskSpec, example: Example) -> str:
        """The question, then the example's gold (:data:`ANSWER_TEXT` or :data:`RATIONALE_TEXT`).

        Raises:
            LatentReasonError: ``gold: rationale`` and the example has no rationale.
        """
        question = task.format_question(example)
        if self.options.gold == "answer":
            return f"{question}\n\n{ANSWER_TEXT.format(answer=example.answer)}"
        if example.rationale is None:
            raise LatentReasonError(
                f"softcot-oracle with gold: rationale reads each example's gold rationale, but example "
                f"{example.id!r} has none (its task's data carry no rationales); use gold: answer."
            )
        return f"{question}\n\n{RATIONALE_TEXT.format(target=task.target_text(example))}"

    def fitted_from(self) -> dict[str, Any]:
        """SoftCoT's, and which gold the assistant reads (it changes the states' statistics)."""
        basis = super().fitted_from()
        return basis | {"gold": self.options.gold} if basis else basis
