"""``no-cot``: the LLM trained to answer directly, without a rationale (the floor latent reasoning must rise above).

It produces nothing, as ``cot``, and trains on the final-answer line of each
target alone (``The final answer is \\boxed{X}.``), dropping the rationale;
with a LoRA adapter it is the ``no-cot-lora`` control of Coconut's and CODI's
papers ("No-CoT-SFT").
"""

from __future__ import annotations

from latentreason.plugin import Example, ThoughtProducer, Thoughts, target_steps


class NoCoT(ThoughtProducer):
    """No thoughts; the training targets keep only their final-answer line."""

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Return empty thoughts."""
        return Thoughts()

    def train_targets(self, examples: list[Example], targets: list[str]) -> list[str]:
        """The final-answer line of each target."""
        return [target_steps(t)[1] for t in targets]
