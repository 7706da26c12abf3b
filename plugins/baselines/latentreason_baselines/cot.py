"""Zero-shot chain of thought: the task instruction and nothing else."""

from __future__ import annotations

from latentreason.plugin import ThoughtProducer, Thoughts


class ZeroShotCoT(ThoughtProducer):
    """Produces no thoughts; the LLM reasons from the instruction alone."""

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Return empty thoughts."""
        return Thoughts()
