"""The comparison protocol: held-back validation, matched prompts, controls and prompt styles, on tiny models."""

from __future__ import annotations

import pytest
import torch

from latentreason.api import training_examples
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.config import load_config
from latentreason.errors import ConfigError, LatentReasonError

QUESTION = {"name": "question"}  # the in-test producer of core_registry


def _pipeline(runtime, registry=None, **overrides):
    """The gsm8k pipeline; softcot (a shipped plugin) unless ``overrides`` name another producer."""
    config = load_config(overrides={"producer": {"name": "softcot"}, "data": {"task": "gsm8k"}, **overrides})
    return prepare(config, registry, runtime=runtime).pipeline


def test_validation_is_held_back_from_the_training_split(runtime, core_registry):
    pipeline = _pipeline(runtime, core_registry, producer=QUESTION, train={"limit": 5, "val_limit": 3})
    train, validation = training_examples(pipeline.plan)
    split = pipeline.task.load(pipeline.task.train_split, limit=8)
    assert [e.id for e in validation] == [e.id for e in split[:3]]
    assert [e.id for e in train] == [e.id for e in split[3:8]]
    assert all(e.id.startswith("gsm8k-train-") for e in train + validation)


def test_the_test_split_validates_only_when_asked(runtime, core_registry):
    def validation(**train):
        train = {"limit": 4, "val_limit": 2, "val_split": "test", **train}
        return training_examples(_pipeline(runtime, core_registry, producer=QUESTION, train=train).plan)[1]

    with pytest.raises(LatentReasonError, match="evaluation split.*allow_eval_split"):
        validation()
    assert [e.id for e in validation(allow_eval_split=True)] == ["gsm8k-test-0", "gsm8k-test-1"]


@pytest.mark.plugins  # softcot's thoughts
def test_softcot_trains_with_as_many_thoughts_as_it_evaluates(runtime):
    pipeline = _pipeline(runtime, producer={"name": "softcot", "options": {"n_thoughts": 3}})
    assert pipeline.producer.produce(["q"], instruction="i", training=True).vectors.shape[1] == 3
    assert pipeline.producer.produce(["q"], instruction="i").vectors.shape[1] == 3


@pytest.mark.plugins  # softcot's thoughts
def test_next_question_thoughts_are_another_questions_thoughts(runtime):
    own = _pipeline(runtime)
    shifted = _pipeline(runtime, thoughts_from="next")
    shifted.projector.load_state_dict(own.projector.state_dict())
    examples = own.task.load(limit=3)
    with torch.no_grad():
        a, b = own.inputs(examples), shifted.inputs(examples)
    assert a.prompts == b.prompts  # the LLM reads the same prompt around the thoughts
    slots = a.inputs_embeds != b.inputs_embeds  # (B, T, d)
    assert slots.any(-1).sum(-1).tolist() == [4, 4, 4]  # only the 4 thought positions differ
    with torch.no_grad():
        question = own.task.format_question(examples[1])
        expected = own.projector(own.producer.produce([question], instruction=own.instruction).vectors)[0]  # (4, d)
    assert torch.allclose(b.inputs_embeds[0][slots[0].any(-1)], expected, atol=1e-5)  # example 0 got example 1's


@pytest.mark.plugins  # softcot's thoughts
def test_zero_and_mean_ablations_replace_exactly_what_the_llm_receives(runtime):
    own = _pipeline(runtime, audit={"offset": 40, "limit": 5})
    zero, mean = (_pipeline(runtime, thoughts_from=t, audit={"offset": 40, "limit": 5}) for t in ("zero", "mean"))
    for ablation in (zero, mean):
        ablation.projector.load_state_dict(own.projector.state_dict())
    examples = own.task.load(limit=3)
    with torch.no_grad():
        a, z, m = own.inputs(examples), zero.inputs(examples), mean.inputs(examples)
    slots = a.thought_mask  # (B, T): 4 thought positions per row
    assert slots.sum(-1).tolist() == [4, 4, 4] and a.prompts == z.prompts == m.prompts
    assert torch.equal(z.inputs_embeds[~slots], a.inputs_embeds[~slots])  # only the thoughts change
    assert torch.equal(m.inputs_embeds[~slots], a.inputs_embeds[~slots])
    assert not z.inputs_embeds[slots].any()  # zero vectors
    # the mean of the method's own LLM-input thoughts over training rows 40-44, the same for every question
    rows = own.task.load("train", limit=5, offset=40)
    assert [e.id for e in rows] == [e.id for e in mean.plan.held_back().examples]
    with torch.no_grad():
        expected = own.inputs(rows).inputs_embeds[own.inputs(rows).thought_mask].reshape(5, 4, -1).mean(0)  # (4, d)
    assert torch.allclose(m.inputs_embeds[slots].reshape(3, 4, -1), expected.expand(3, 4, -1), atol=1e-5)
    with torch.no_grad():  # training reads the method's own thoughts
        trained = zero.inputs(examples, [[1, 2]] * 3)
    assert trained.inputs_embeds[trained.thought_mask].any()


def test_the_mean_ablation_never_reads_the_test_split(core_registry):
    def plan(**overrides):
        return resolve(
            load_config(overrides={"producer": QUESTION, "thoughts_from": "mean", **overrides}), core_registry
        )

    with pytest.raises(ConfigError, match="thoughts_from: mean: audit.split 'test' is gsm8k's evaluation split"):
        plan(audit={"split": "test"}).checked_examples()
    # by default the rows just after the ones `train` reads: validation's 16, then 256
    assert [e.id for e in plan(audit={"limit": 2}).held_back().examples] == ["gsm8k-train-272", "gsm8k-train-273"]
    unbounded = plan(train={"limit": None})
    with pytest.raises(ConfigError, match="train.limit is unset.*audit.offset"):
        unbounded.checked_examples()


def test_ablating_soft_thoughts_needs_a_producer_that_makes_them(runtime, core_registry):
    pipeline = _pipeline(runtime, core_registry, producer=QUESTION, thoughts_from="zero")
    with pytest.raises(
        LatentReasonError, match="thoughts_from: zero replaces the soft thoughts.*'question' makes none"
    ):
        pipeline.inputs(pipeline.task.load(limit=1))


@pytest.mark.plugins  # softcot's thoughts
def test_the_softcot_prompt_style_uses_the_reference_wording(runtime):
    pipeline = _pipeline(runtime, prompt_style="softcot")
    prompt = pipeline.inputs(pipeline.task.load(limit=1)).prompts[0]
    assert "## Step" in pipeline.instruction and "Therefore, the final answer is" in pipeline.instruction
    assert "weaker assistant" in prompt and pipeline.instruction in prompt
    assert pipeline.producer.options.assistant_prefix.startswith("Here are {n} tokens")
    ids, _, _ = pipeline.producer._encode(["What is 2 + 3?"], 4)
    text = runtime.assistant.tokenizer.decode(ids[0])
    assert "Here are 4 tokens to help" in text
    mine = _pipeline(
        runtime, prompt_style="softcot", producer={"name": "softcot", "options": {"assistant_prefix": None}}
    )
    assert mine.producer.options.assistant_prefix is None  # options the user sets win over the style's


@pytest.mark.plugins  # the cot producer beside an extra task plugin
def test_a_style_a_task_lacks_is_reported():
    from dataclasses import replace

    from latentreason.builtins.tasks import BUILTIN_TASKS
    from latentreason.hooks.specs import hookimpl

    class Plugin:
        @hookimpl
        def latentreason_tasks(self):
            return {"plain": replace(BUILTIN_TASKS["gsm8k"], name="plain", instructions={})}

    config = load_config(overrides={"producer": {"name": "cot"}, "data": {"task": "plain"}, "prompt_style": "softcot"})
    with pytest.raises(ConfigError, match="task 'plain' has no 'softcot' wording"):
        resolve(config, Registry([Plugin()]))
