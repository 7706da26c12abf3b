"""``codi``: CODI (Shen et al., EMNLP 2025), one LLM trained as its own teacher (CoT) and student (latent).

Training runs the LLM (with its LoRA adapter) twice per example. The teacher
reads the question and writes the gold rationale and answer (its NLL is the
teacher loss). The student reads the question, then K latent thoughts (a
latent prefix: each its last hidden state through the step map, CODI's MLP
with LayerNorm, the ``latent-map`` projector by default), and writes only the
final-answer line (the student loss). The distillation loss aligns the
student's hidden states with the teacher's at the token just before the
answer, in every layer (the embedding output and each block): the L1
distance to the teacher's states (detached, so the teacher is not pulled
towards the student), divided by the standard deviation of the teacher's
states there, as CODI's ``distill_loss_div_std`` does, averaged over layers.
The three are summed (``teacher_weight`` and ``distill_weight`` scale two of
them; both 1, as in CODI's public GSM8K scripts). At evaluation the LLM writes
after the K latent thoughts, like the student.

Both targets end with the same final-answer line, tokenized once, so "the
token before the answer" is the same token in both (the last token before
the answer's first token in ``The final answer is \\boxed{X}.``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from latentreason.plugin import (
    IGNORE_INDEX,
    Example,
    LatentPrefixProducer,
    PluginOptions,
    end_of_turn_id,
    llm_states,
    target_nll,
    target_steps,
)


class CodiOptions(PluginOptions):
    """Options of CODI.

    Attributes:
        latent_steps: K, the continuous thoughts (CODI's 6 on GSM8K).
        teacher_weight: the weight of the teacher's NLL.
        distill_weight: the weight of the distillation loss.
        distill_loss: ``l1`` (the paper's) or ``smooth-l1`` (the public code's default).
    """

    latent_steps: int = Field(6, gt=0)
    teacher_weight: float = Field(1.0, ge=0)
    distill_weight: float = Field(1.0, ge=0)
    distill_loss: Literal["l1", "smooth-l1"] = "l1"


class Codi(LatentPrefixProducer):
    """A latent prefix of K thoughts, trained by self-distillation from the same LLM's chain of thought."""

    Options = CodiOptions
    options: CodiOptions
    default_projector = "latent-map"

    def latent_steps(self, training: bool) -> int:
        """K, in training and at evaluation."""
        return self.options.latent_steps

    def train_targets(self, examples: list[Example], targets: list[str]) -> list[str]:
        """The student's targets: the final-answer line alone (the teacher's are built in :meth:`training_loss`)."""
        return [target_steps(t)[1] for t in targets]

    def _targets(self, pipeline, examples: list[Example]) -> tuple[list[list[int]], list[list[int]], list[int]]:
        """Token ids of the student's and the teacher's targets, and where each one's answer-predicting token is.

        The teacher's target is at most ``train.max_target_tokens`` long, as
        every target in training is: a rationale too long for it loses its
        last steps' tokens, never the final-answer line the distillation reads.

        Returns:
            Student targets (final line, end of turn), teacher targets (steps,
            then the same ids), and per example the index, counted from the
            end of either target, of the token just before the answer.
        """
        tokenizer = pipeline.runtime.llm.tokenizer
        limit = pipeline.config.train.max_target_tokens
        stop = end_of_turn_id(tokenizer)
        students, teachers, from_end = [], [], []
        for ex in examples:
            steps, final = target_steps(pipeline.task.target_text(ex))
            student = [*tokenizer(final, add_special_tokens=False)["input_ids"], stop]
            head = final[: final.rindex(ex.answer)] if ex.answer in final else final
            before = tokenizer(head, add_special_tokens=False)["input_ids"]
            shared = next((i for i, (a, b) in enumerate(zip(before, student)) if a != b), len(before))
            rationale = tokenizer("\n".join(steps) + "\n", add_special_tokens=False)["input_ids"] if steps else []
            students.append(student)
            teachers.append(rationale[: max(0, limit - len(student))] + student)
            from_end.append(len(student) - max(shared, 1) + 1)  # the last token the answer's first follows
        return students, teachers, from_end

    def training_loss(self, pipeline, examples: list[Example], targets: list[list[int]]) -> torch.Tensor:
        """Teacher NLL + student NLL + distillation, as in the module docstring."""
        llm = pipeline.runtime.llm
        students, teachers, from_end = self._targets(pipeline, examples)
        student_inputs = pipeline.inputs(examples, students)  # question, K latent thoughts, final line
        questions = [pipeline.task.format_question(ex) for ex in examples]
        teacher_inputs = pipeline.injector.build(pipeline.instruction, questions, None, None, teachers)
        student_layers = llm_states(pipeline, student_inputs, all_layers=True)  # (L+1) x (B, T_s, d)
        teacher_layers = llm_states(pipeline, teacher_inputs, all_layers=True)  # (L+1) x (B, T_t, d)
        assert student_inputs.labels is not None and teacher_inputs.labels is not None  # built with targets
        student_nll = target_nll(llm, student_layers[-1], student_inputs.labels)
        teacher_nll = target_nll(llm, teacher_layers[-1], teacher_inputs.labels)
        rows = torch.arange(len(examples))
        at_student = _target_ends(student_inputs.labels) - torch.tensor(from_end)  # (B,) columns before the answer
        at_teacher = _target_ends(teacher_inputs.labels) - torch.tensor(from_end)  # (B,)
        distance = F.l1_loss if self.options.distill_loss == "l1" else F.smooth_l1_loss
        distill = torch.stack(
            [
                distance(student[rows, at_student].float(), teacher[rows, at_teacher].detach().float())
                / teacher[rows, at_teacher].detach().float().std()
                for student, teacher in zip(student_layers, teacher_layers)
            ]
        ).mean()
        return student_nll + self.options.teacher_weight * teacher_nll + self.options.distill_weight * distill


def _target_ends(labels: torch.Tensor) -> torch.Tensor:
    """Per row of ``labels`` ``(B, T)``, the column after its last supervised token ``(B,)`` (rows may be right-padded)."""
    return (labels != IGNORE_INDEX).long().cumsum(1).argmax(1).cpu() + 1
