"""``coconut``: Coconut as published (Hao et al. 2024), the LLM trained through a curriculum to reason in its own states.

Stage k of the curriculum replaces the first k reasoning steps of each gold
rationale with k*c continuous thoughts (a latent prefix: each thought is the
LLM's last hidden state fed back as its next input, between the injector's
begin/end markers), and trains the LLM's LoRA adapter on the remaining steps
and the answer; the thoughts themselves are never supervised, only what the
LLM writes after them, with gradients through every thought. After the last
latent stage (``stages``), stage ``stages + 1`` replaces every step: the LLM
reasons in ``stages * c`` thoughts and writes only the answer. As in the
paper's GSM8K setup, every example of a stage gets the same number of
thoughts (a rationale with fewer steps than the stage loses all of them; its
``pad_latent_to_max``), stage 0 is plain CoT training (here ``cot`` with the
adapter, the ``cot-lora`` control), and the optimizer is reset between
stages: each stage is one ``latentreason train`` run
(``producer.options.stage=k``) that starts from the previous stage's
checkpoint with a fresh optimizer. A trained checkpoint is evaluated at the
stage it was trained at (by default the last). ``docs/latent-llm.md`` lists
the commands.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from latentreason.plugin import Example, LatentPrefixProducer, LatentReasonError, PluginOptions, target_steps


class CoconutOptions(PluginOptions):
    """Options of Coconut.

    Attributes:
        thoughts_per_step: c, the continuous thoughts that replace one reasoning step (the paper's 2 on GSM8K).
        stages: the last latent stage (the paper's ``max_latent_stage``, 3 on GSM8K).
        stage: the stage trained or evaluated, 1 to ``stages + 1``; None: ``stages + 1``,
            every step replaced by ``stages * thoughts_per_step`` thoughts.
    """

    thoughts_per_step: int = Field(2, gt=0)
    stages: int = Field(3, gt=0)
    stage: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _stage_in_curriculum(self) -> CoconutOptions:
        if self.stage is not None and self.stage > self.stages + 1:
            raise ValueError(
                f"stage {self.stage} is past the curriculum: stages 1..{self.stages} replace that many steps, "
                f"stage {self.stages + 1} every step"
            )
        return self


class Coconut(LatentPrefixProducer):
    """The latent prefix of the current curriculum stage: ``min(stage, stages) * c`` thoughts."""

    Options = CoconutOptions
    options: CoconutOptions

    @property
    def stage(self) -> int:
        """The stage trained or evaluated (``stages + 1`` by default)."""
        return self.options.stage or self.options.stages + 1

    def latent_steps(self, training: bool) -> int:
        """``min(stage, stages) * c``, the same in training and at evaluation."""
        return min(self.stage, self.options.stages) * self.options.thoughts_per_step

    def train_targets(self, examples: list[Example], targets: list[str]) -> list[str]:
        """Each target without the steps this stage replaces: the remaining steps, then the final-answer line.

        Raises:
            LatentReasonError: ``stages`` is larger than the longest rationale's
                step count, so some stage would replace nothing new.
        """
        split = [target_steps(t) for t in targets]
        longest = max(len(steps) for steps, _ in split)
        if self.options.stages > longest:
            raise LatentReasonError(
                f"Coconut's curriculum has {self.options.stages} stages (producer.options.stages), but the longest "
                f"of these {len(targets)} rationales has {longest} step(s), so stages past {longest} would replace "
                f"nothing. Set producer.options.stages to at most {longest}, or train on step rationales "
                "(--task gsm8k-steps: one step per line)."
            )
        kept = []
        for steps, final in split:
            replaced = len(steps) if self.stage > self.options.stages else min(self.stage, len(steps))
            kept.append("\n".join([*steps[replaced:], final]))
        return kept
