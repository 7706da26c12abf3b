"""The latent prefix: K steps of the LLM's own states as its next inputs, in training and decoding, on tiny models."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from pydantic import Field

from latentreason.assembly.latent_prefix import latent_prefix
from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.components.latent_producer import LatentPrefixProducer
from latentreason.config import AdapterConfig, PluginOptions, load_config
from latentreason.errors import LatentReasonError
from latentreason.hooks.specs import hookimpl
from latentreason.models.runtime import Runtime
from latentreason.testing import tiny_model
from latentreason.training.trainer import llm_states, supervised_loss, target_nll, teacher_forced

pytest.importorskip("peft")

ADAPTER = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]}


class StepsOptions(PluginOptions):
    """K latent steps."""

    steps: int = Field(3, gt=0)


class Steps(LatentPrefixProducer):
    """A latent prefix of ``steps`` thoughts."""

    Options = StepsOptions
    options: StepsOptions

    def latent_steps(self, training: bool) -> int:
        return self.options.steps


class Plugin:
    @hookimpl
    def latentreason_producers(self):
        return {"steps": Steps}


def _pipeline(steps=3, projector="latent-map", adapter=True, **overrides):
    runtime = Runtime(llm=tiny_model("qwen2", hidden=64, seed=1), adapter=AdapterConfig(**ADAPTER) if adapter else None)
    config = load_config(
        overrides={
            "producer": {"name": "steps", "options": {"steps": steps}},
            "projector": {"name": projector},
            "data": {"task": "gsm8k", "limit": 3},
            **({"adapter": ADAPTER} if adapter else {}),
            **overrides,
        }
    )
    pipeline = Pipeline(resolve(config, Registry([Plugin()])), runtime)
    torch.manual_seed(0)
    for name, p in runtime.llm.model.named_parameters():
        if "lora_B" in name:  # a trained-looking adapter (peft starts B at 0, where A gets no gradient)
            p.data.normal_(0, 0.05)
    return pipeline


def test_the_prefix_is_the_recurrence_of_mapped_hidden_states_and_does_not_depend_on_padding():
    pipeline = _pipeline()
    llm, task = pipeline.runtime.llm, pipeline.task
    examples = task.load(limit=3)
    with torch.no_grad():
        batch = pipeline.inputs(examples)
        alone = pipeline.inputs(examples[1:2])
        thoughts = batch.inputs_embeds[batch.thought_mask].reshape(3, 3, -1)  # (B, K, d)
        assert torch.allclose(thoughts[1], alone.inputs_embeds[alone.thought_mask], atol=1e-5)
        # recomputed without a cache: thought j is the map of the last state after the prompt and thoughts < j
        row = alone.inputs_embeds[0]  # (T, d)
        first = int(alone.thought_mask[0].nonzero()[0])
        for j in range(3):
            hidden = llm.model.base_model(inputs_embeds=row[None, : first + j]).last_hidden_state[:, -1:]
            assert torch.allclose(pipeline.projector(hidden)[0, 0], row[first + j], atol=1e-5)


def test_gradients_reach_the_adapter_and_the_map_through_all_k_steps():
    pipeline = _pipeline(steps=3)
    examples = pipeline.task.load(limit=2)
    targets = [[11, 12, 13, 14], [15, 16]]
    supervised_loss(pipeline, examples, targets).backward()
    modules = pipeline.trainable()
    assert set(modules) == {"projector", "adapter"}
    for name, module in modules.items():
        for key, p in module.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), f"{name}.{key} got no gradient"
    # the last thought depends, differentiably, on the first one: the gradient goes through every step
    outputs: list[torch.Tensor] = []
    handle = pipeline.projector.register_forward_hook(lambda module, args, out: outputs.append(out))
    prompts = pipeline.injector.build(pipeline.instruction, ["What is 2 plus 3?"], torch.zeros(1, 3, 64))
    thoughts = latent_prefix(pipeline.runtime.llm, prompts, 3, pipeline.projector).thoughts  # (1, K, d)
    handle.remove()
    weights = torch.randn(thoughts.shape[-1])  # (d,); not a plain sum, which a LayerNorm's output keeps at 0
    (through_steps,) = torch.autograd.grad((thoughts[0, -1] * weights).sum(), outputs[0])
    assert bool(through_steps.abs().sum() > 0)


def test_training_continues_from_the_prefix_with_the_loss_and_gradients_of_one_pass_over_the_injectors_rows():
    pipeline = _pipeline(steps=3)
    llm = pipeline.runtime.llm
    examples = pipeline.task.load(limit=3)
    targets = [[11, 12, 13, 14, 15], [16], [17, 18]]  # of different lengths: the injector left-pads them apart
    trained = [p for module in pipeline.trainable().values() for p in module.parameters() if p.requires_grad]
    inputs = pipeline.inputs(examples, targets)
    assert inputs.prefix is not None and inputs.prefix.columns == int(inputs.thought_mask[0].nonzero()[-1])
    (hidden,) = llm_states(pipeline, inputs)  # (B, T, d), from the last thought on
    continued = target_nll(llm, hidden, inputs.labels)
    # the injector's own rows (left-padded whole), the same thoughts, one pass from the first column
    questions = [pipeline.task.format_question(ex) for ex in examples]
    rows = pipeline.injector.build(pipeline.instruction, questions, inputs.prefix.thoughts, None, targets)
    assert rows.prefix is None and not torch.equal(rows.thought_mask[0], rows.thought_mask[1])
    (whole,) = llm_states(pipeline, rows)
    once = target_nll(llm, whole, rows.labels)
    assert torch.allclose(continued, once, atol=1e-5)
    for a, b in zip(torch.autograd.grad(continued, trained, retain_graph=True), torch.autograd.grad(once, trained)):
        assert torch.allclose(a, b, atol=1e-5)
    # every layer's states at the supervised tokens, as CODI reads them
    layers = llm_states(pipeline, inputs, all_layers=True)
    flat = llm_states(pipeline, dataclasses.replace(inputs, prefix=None), all_layers=True)
    assert len(layers) == len(flat) > 2
    supervised = inputs.labels != -100
    for a, b in zip(layers, flat):
        assert torch.allclose(a[supervised], b[supervised], atol=1e-5)


def test_decoding_after_the_prefix_writes_what_teacher_forced_training_predicts():
    pipeline = _pipeline(steps=2, generation={"max_new_tokens": 6, "stop_at_answer": False, "batch_size": 2})
    examples = pipeline.task.load(limit=2)
    chains = {w.example.id: w.chains[0].token_ids for w in pipeline.chains(examples)}
    targets = [chains[ex.id] for ex in examples]
    assert all(len(t) == 6 for t in targets)
    with torch.no_grad():
        inputs, hidden = teacher_forced(pipeline, examples, targets)  # hidden: (B, T, d)
        logits = pipeline.runtime.llm.model.lm_head(hidden)  # (B, T, V)
    labels = inputs.labels[:, 1:]  # (B, T-1)
    predicted = logits[:, :-1].argmax(-1)[labels != -100]  # the greedy token at every target position
    assert predicted.tolist() == [t for target in targets for t in target]


def test_the_prefix_needs_slots_the_injector_marks():
    pipeline = _pipeline(adapter=False, projector="identity")
    prompts = pipeline.injector.build(pipeline.instruction, ["q"], torch.zeros(1, 2, 64))
    with pytest.raises(LatentReasonError, match="3 consecutive thought slots"):
        latent_prefix(pipeline.runtime.llm, prompts, 3, pipeline.projector)
    prompts.thought_mask = None
    with pytest.raises(LatentReasonError, match="marks its thought slots"):
        latent_prefix(pipeline.runtime.llm, prompts, 2, pipeline.projector)


def test_the_thought_audit_reads_the_latent_prefix_where_the_llm_receives_it():
    from latentreason.evaluation.audit import audit

    pipeline = _pipeline(steps=2, adapter=False, projector="identity")
    report = audit(pipeline, pipeline.task.load("train", limit=10), "train", 0)
    assert [s.stage for s in report.stages] == ["llm input"]  # the thoughts exist only as the LLM's inputs
    assert report.stages[0].specific_share > 0 and report.attention is not None
