"""Coconut's curriculum, CODI's self-distillation and no-cot: the LLM-trained latent methods and their floor, on tiny models."""

from __future__ import annotations

import pytest
import torch

from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.config import AdapterConfig, load_config
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.models.runtime import Runtime
from latentreason.testing import tiny_model
from latentreason.training.trainer import Trainer, gold_targets

pytest.importorskip("peft")

ADAPTER = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]}


def _config(producer: str, options: dict | None = None, **overrides):
    return load_config(
        overrides={
            "producer": {"name": producer, "options": options or {}},
            "data": {"task": "gsm8k-steps"},
            "adapter": ADAPTER,
            **overrides,
        }
    )


def _pipeline(producer: str, options: dict | None = None, **overrides) -> Pipeline:
    runtime = Runtime(llm=tiny_model("qwen2", hidden=64, seed=1), adapter=AdapterConfig(**ADAPTER))
    return Pipeline(resolve(_config(producer, options, **overrides), Registry()), runtime)


def _text(pipeline: Pipeline, ids: list[int]) -> str:
    return pipeline.runtime.llm.tokenizer.decode(ids)


@pytest.mark.parametrize(
    ("producer", "options", "message"),
    [
        ("coconut", {"thoughts_per_step": 0}, "thoughts_per_step: Input should be greater than 0"),
        ("coconut", {"stages": 0}, "stages: Input should be greater than 0"),
        ("coconut", {"stages": 2, "stage": 4}, "stage 4 is past the curriculum"),
        ("codi", {"latent_steps": 0}, "latent_steps: Input should be greater than 0"),
    ],
)
def test_no_latent_thoughts_or_a_stage_past_the_curriculum_is_refused_before_a_model_loads(producer, options, message):
    with pytest.raises(ConfigError, match=message):
        resolve(_config(producer, options), Registry())


def test_each_coconut_stage_replaces_its_first_steps_with_c_thoughts_each():
    examples = _pipeline("cot").task.load("train", limit=3)  # 2, 2 and 3 steps
    for stage, steps in ((1, 2), (2, 4), (3, 6), (4, 6)):
        pipeline = _pipeline("coconut", {"stages": 3, "thoughts_per_step": 2, "stage": stage})
        texts = pipeline.producer.train_targets(examples, [pipeline.task.target_text(ex) for ex in examples])
        assert pipeline.producer.latent_steps(True) == pipeline.producer.latent_steps(False) == steps
        kept = [t.split("\n")[:-1] for t in texts]
        full = [(ex.rationale or "").split("\n") for ex in examples]
        assert kept == [f[stage:] if stage <= 3 else [] for f in full]
        assert all(t.endswith(f"\\boxed{{{ex.answer}}}.") for t, ex in zip(texts, examples))
        inputs = pipeline.inputs(examples[:1])
        assert int(inputs.thought_mask.sum()) == steps


def test_a_curriculum_longer_than_every_rationale_is_refused():
    pipeline = _pipeline("coconut", {"stages": 4})
    examples = pipeline.task.load("train", limit=3)  # 2, 2 and 3 steps
    with pytest.raises(LatentReasonError, match="longest of these 3 rationales has 3 step"):
        gold_targets(pipeline, examples, 256)


def test_no_cot_trains_on_the_answer_alone():
    pipeline = _pipeline("no-cot")
    examples = pipeline.task.load("train", limit=2)
    targets = gold_targets(pipeline, examples, 256)
    assert [_text(pipeline, targets[ex.id]) for ex in examples] == [
        f"The final answer is \\boxed{{{ex.answer}}}.<|im_end|>" for ex in examples
    ]


def test_the_coconut_curriculum_trains_stage_after_stage_each_with_a_fresh_optimizer(tmp_path):
    examples = _pipeline("cot").task.load("train", limit=4)
    weights = None
    for stage in (1, 2):
        pipeline = _pipeline("coconut", {"stages": 2, "thoughts_per_step": 1, "stage": stage}, checkpoint=weights)
        assert pipeline.untrained == ([] if weights else ["adapter"])  # stage 2 starts from stage 1's adapter
        config = pipeline.config.train.model_copy(update={"batch_size": 2, "lr": 0.02, "warmup_steps": 0, "epochs": 2})
        trainer = Trainer(pipeline, examples, [], config, tmp_path / f"stage-{stage}", progress=False)
        assert trainer.optimizer.state_dict()["state"] == {}  # the optimizer is reset between stages
        result = trainer.run()
        assert result.history[-1]["loss"] < result.history[0]["loss"]
        weights = str(result.weights)


def test_codi_targets_share_the_answer_line_and_locate_the_token_before_the_answer():
    pipeline = _pipeline("codi", {"latent_steps": 2})
    examples = pipeline.task.load("train", limit=3)
    students, teachers, from_end = pipeline.producer._targets(pipeline, examples)
    for ex, student, teacher, back in zip(examples, students, teachers, from_end):
        assert teacher[-len(student) :] == student and _text(pipeline, teacher).startswith(ex.rationale)
        position = len(student) - back  # the index of the token the answer's first token follows
        assert _text(pipeline, student[: position + 1]).endswith("\\boxed{")
        assert _text(pipeline, student[position + 1 :]).startswith(ex.answer)


def test_codi_teacher_targets_are_cut_at_max_target_tokens_keeping_the_answer_line():
    full = _pipeline("codi", {"latent_steps": 2})
    examples = full.task.load("train", limit=3)
    students, teachers, _ = full.producer._targets(full, examples)
    limit = min(len(t) for t in teachers) - 1  # every rationale is too long for it
    cut = _pipeline("codi", {"latent_steps": 2}, train={"max_target_tokens": limit})
    students_cut, teachers_cut, _ = cut.producer._targets(cut, examples)
    assert students_cut == students
    for student, teacher, short in zip(students, teachers, teachers_cut):
        assert len(short) == limit and short[-len(student) :] == student
        assert short[: limit - len(student)] == teacher[: limit - len(student)]  # the rationale's first tokens


def test_codi_trains_the_adapter_and_the_map_through_teacher_student_and_distillation(tmp_path):
    pipeline = _pipeline("codi", {"latent_steps": 2})
    assert pipeline.plan.projector.name == "latent-map"
    for name, p in pipeline.runtime.llm.model.named_parameters():
        if "lora_B" in name:  # a trained-looking adapter (peft starts B at 0, where A gets no gradient)
            torch.nn.init.normal_(p, std=0.05)
    examples = pipeline.task.load("train", limit=4)
    loss = pipeline.producer.training_loss(pipeline, examples[:2], [])
    loss.backward()
    for name, module in pipeline.trainable().items():
        for key, p in module.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), f"{name}.{key} got no gradient"
    without = pipeline.producer.options.model_copy(update={"distill_weight": 0.0, "teacher_weight": 0.0})
    pipeline.producer.options = without
    with torch.no_grad():
        student_only = pipeline.producer.training_loss(pipeline, examples[:2], [])
    assert float(student_only) < float(loss.detach())  # the teacher and distillation terms count
    pipeline.producer.options = without.model_copy(update={"distill_weight": 1.0, "teacher_weight": 1.0})
    config = pipeline.config.train.model_copy(update={"batch_size": 2, "lr": 0.02, "warmup_steps": 0, "epochs": 2})
    result = Trainer(pipeline, examples, [], config, tmp_path, progress=False).run()
    assert result.history[-1]["loss"] < result.history[0]["loss"]
