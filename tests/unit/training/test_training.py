"""Projector training: loss goes down, only the projector changes, checkpoints, resume.

The method is the core's own: the in-test ``states`` producer (tests/conftest.py)
and the built-in ``latent-map`` projector, so these tests need no plugin package.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest
import torch
from safetensors.torch import load_file

from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.config import TrainConfig, load_config
from latentreason.errors import LatentReasonError
from latentreason.storage import load_weights, read_meta, save_weights
from latentreason.training import trainer as training
from latentreason.training.trainer import Trainer

STATES = {"name": "states", "options": {"n_thoughts": 2, "n_thoughts_train": 3}}
MLP = {"name": "latent-map", "options": {"kind": "mlp", "hidden": 32}}


def _pipeline(runtime, core_registry, seed=0, **projector):
    config = load_config(
        overrides={"producer": STATES, "projector": projector or MLP, "data": {"task": "gsm8k"}, "seed": seed}
    )
    return prepare(config, core_registry, runtime=runtime).pipeline


def _train_config(**train):
    """A run config of the in-test method on GSM8K with these ``train`` settings, for ``api.train`` and ``api.loss``."""
    return load_config(
        overrides={
            "producer": {"name": "states"},
            "projector": MLP,
            "data": {"task": "gsm8k"},
            "train": train,
            "audit": {"after_training": False},  # audited in tests/system/test_cli.py
        }
    )


def _frozen_state(runtime):
    return {
        f"{role}.{k}": v.clone()
        for role, model in (("llm", runtime.llm.model), ("assistant", runtime.assistant.model))
        for k, v in model.state_dict().items()
    }


def test_training_lowers_the_loss_and_changes_only_the_projector(runtime, core_registry, tmp_path):
    torch.manual_seed(0)
    pipeline = _pipeline(runtime, core_registry)
    examples = pipeline.task.load("train", limit=4)
    before_frozen = _frozen_state(runtime)
    before_projector = {k: v.clone() for k, v in pipeline.projector.state_dict().items()}
    config = TrainConfig(epochs=12, batch_size=4, lr=3e-2, warmup_steps=0, max_target_tokens=24)
    trainer = Trainer(pipeline, examples, [], config, tmp_path, progress=False)
    start = training.supervised_loss(pipeline, examples, [trainer.targets[e.id] for e in examples]).item()
    result = trainer.run()
    end = training.supervised_loss(pipeline, examples, [trainer.targets[e.id] for e in examples]).item()
    assert end < start - 0.1
    assert len(result.history) == 12
    after_frozen = _frozen_state(runtime)
    assert all(torch.equal(before_frozen[k], after_frozen[k]) for k in before_frozen)
    assert any(not torch.equal(before_projector[k], v) for k, v in pipeline.projector.state_dict().items())
    assert (tmp_path / "last.safetensors").exists() and (tmp_path / "epoch-12.safetensors").exists()


def test_whole_targets_end_with_end_of_turn_and_cut_ones_do_not(runtime, core_registry, tmp_path):
    pipeline = _pipeline(runtime, core_registry)
    examples = pipeline.task.load("train", limit=4)
    tokenizer = runtime.llm.tokenizer
    lengths = [len(tokenizer(pipeline.task.target_text(ex), add_special_tokens=False)["input_ids"]) for ex in examples]
    cap = sorted(lengths)[1] + 1  # the shortest two fit with their end-of-turn, the others are cut
    assert min(lengths) < cap <= max(lengths)
    trainer = Trainer(pipeline, examples, [], TrainConfig(max_target_tokens=cap), tmp_path, progress=False)
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for ex, length in zip(examples, lengths):
        target = trainer.targets[ex.id]
        assert len(target) <= cap
        assert (target[-1] == eot) == (length < cap), (length, cap)  # a cut target never teaches the LLM to stop
    assert trainer.cut == [ex.id for ex, length in zip(examples, lengths) if length >= cap]  # train warns of them


def test_checkpoint_round_trip(runtime, core_registry, tmp_path):
    first = _pipeline(runtime, core_registry)
    path = save_weights(tmp_path / "p.safetensors", first.trainable(), {"components": first.components()})
    second = _pipeline(runtime, core_registry, seed=1)  # another seed: another initialization
    thoughts = torch.randn(1, 2, runtime.assistant.hidden_size)
    assert not torch.allclose(first.projector(thoughts), second.projector(thoughts))
    meta = load_weights(path, second.trainable())
    assert torch.allclose(first.projector(thoughts), second.projector(thoughts))
    assert meta["components"]["projector"]["name"] == "latent-map"
    assert read_meta(path) == meta


def test_checkpoint_of_the_wrong_shape_says_which_tensor(runtime, core_registry, tmp_path):
    mlp = _pipeline(runtime, core_registry, name="latent-map", options={"kind": "mlp", "layer_norm": False})
    path = save_weights(tmp_path / "mlp.safetensors", mlp.trainable(), {"components": mlp.components()})
    linear = _pipeline(runtime, core_registry, name="latent-map", options={"kind": "linear"})
    with pytest.raises(LatentReasonError) as err:
        load_weights(path, linear.trainable())
    message = str(err.value)
    assert "missing tensor projector.net.weight (expected shape (64, 48))" in message
    assert "unexpected tensor projector.net.1.weight" in message

    narrow = torch.nn.Linear(48, 32)
    bad = save_weights(tmp_path / "narrow.safetensors", {"projector": torch.nn.ModuleDict({"linear": narrow})}, {})
    with pytest.raises(
        LatentReasonError, match=r"projector.linear.weight has shape \(32, 48\) but this run needs \(64, 48\)"
    ):
        load_weights(bad, {"projector": torch.nn.ModuleDict({"linear": torch.nn.Linear(48, 64)})})


def test_non_safetensors_checkpoints_are_refused(tmp_path):
    pickled = tmp_path / "weights.pt"
    torch.save({"x": torch.zeros(1)}, pickled)
    with pytest.raises(LatentReasonError, match="only safetensors"):
        load_weights(pickled, {})


def test_interrupted_training_resumes_to_the_same_weights(runtime, core_registry, tmp_path, monkeypatch):
    config = TrainConfig(epochs=2, batch_size=2, lr=1e-2, warmup_steps=1, max_target_tokens=12, save_every=1)

    def fresh():
        torch.manual_seed(0)
        pipeline = _pipeline(runtime, core_registry)
        return pipeline, pipeline.task.load("train", limit=6)

    pipeline, examples = fresh()
    Trainer(pipeline, examples, [], config, tmp_path / "straight", progress=False).run()
    reference = {k: v.clone() for k, v in pipeline.projector.state_dict().items()}

    calls = {"n": 0}
    real_loss = training.supervised_loss

    def interrupting_loss(*args):
        calls["n"] += 1
        if calls["n"] == 4:  # in the middle of epoch 1: send ourselves SIGTERM
            os.kill(os.getpid(), signal.SIGTERM)
        return real_loss(*args)

    pipeline, examples = fresh()
    monkeypatch.setattr(training, "supervised_loss", interrupting_loss)
    with pytest.raises(KeyboardInterrupt):
        Trainer(pipeline, examples, [], config, tmp_path / "resumed", progress=False).run()
    monkeypatch.setattr(training, "supervised_loss", real_loss)

    pipeline, examples = fresh()  # a new process would start from scratch like this
    trainer = Trainer(pipeline, examples, [], config, tmp_path / "resumed", progress=False)
    result = trainer.run()
    assert len(result.history) == 6
    for key, value in pipeline.projector.state_dict().items():
        assert torch.allclose(value, reference[key], atol=1e-6), key


def test_nan_loss_stops_with_a_clear_message(runtime, core_registry, tmp_path, monkeypatch):
    pipeline = _pipeline(runtime, core_registry)
    examples = pipeline.task.load("train", limit=2)
    monkeypatch.setattr(training, "supervised_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(LatentReasonError, match="loss became nan"):
        Trainer(pipeline, examples, [], TrainConfig(batch_size=2), tmp_path, progress=False).run()


def test_training_starts_from_its_seed_not_from_a_shipped_projector(runtime, core_registry, tmp_path, monkeypatch):
    """A shipped (default) projector serves evaluation; `train` starts fresh unless --checkpoint names weights."""
    from latentreason import api

    shipped = _pipeline(runtime, core_registry)
    for p in shipped.projector.parameters():
        p.data.fill_(0.5)  # recognisable weights
    path = save_weights(tmp_path / "shipped.safetensors", shipped.trainable(), {"components": shipped.components()})
    monkeypatch.setattr(type(shipped.producer), "default_checkpoint", lambda self: path)

    evaluated = _pipeline(runtime, core_registry)  # evaluation: the default fits this setup and is loaded
    assert evaluated.checkpoints == [str(path)]
    assert all(torch.all(p == 0.5) for p in evaluated.projector.parameters())

    config = _train_config(
        limit=2, val_limit=0, lr=1e-9, warmup_steps=0, max_target_tokens=8, checkpoint_dir=str(tmp_path / "fresh")
    )
    fresh = api.train(config, registry=core_registry, progress=False, runtime=runtime)
    assert fresh.started_from == []
    assert read_meta(fresh.weights)["started_from"] == []
    trained = load_file(fresh.weights)
    assert not any(torch.allclose(v, torch.full_like(v, 0.5), atol=1e-4) for v in trained.values())

    named = config.model_copy(
        update={
            "checkpoint": str(path),
            "train": config.train.model_copy(update={"checkpoint_dir": str(tmp_path / "named")}),
        }
    )
    continued = api.train(named, registry=core_registry, progress=False, runtime=runtime)
    assert continued.started_from == [str(path)]
    assert all(torch.allclose(v, torch.full_like(v, 0.5), atol=1e-4) for v in load_file(continued.weights).values())


def test_a_training_state_resumes_only_the_run_that_wrote_it(runtime, core_registry, tmp_path):
    config = TrainConfig(epochs=1, batch_size=2, lr=1e-2, warmup_steps=0, max_target_tokens=8, save_every=1)
    pipeline = _pipeline(runtime, core_registry)
    examples = pipeline.task.load("train", limit=4)
    result = Trainer(pipeline, examples, [], config, tmp_path, progress=False).run()
    assert read_meta(result.weights)["total_steps"] == read_meta(result.weights)["step"] == 2

    state = tmp_path / training.STATE_FILE
    other_lr = config.model_copy(update={"lr": 1e-3})
    with pytest.raises(LatentReasonError, match="belongs to a run with other train.lr \\(0.01 there, 0.001 here\\)"):
        Trainer(_pipeline(runtime, core_registry), examples, [], other_lr, tmp_path, progress=False).resume()
    other_rows = _pipeline(runtime, core_registry).task.load("train", limit=4, offset=1)
    with pytest.raises(LatentReasonError, match="other train examples"):
        Trainer(_pipeline(runtime, core_registry), other_rows, [], config, tmp_path, progress=False).resume()
    assert (
        Trainer(_pipeline(runtime, core_registry), examples, [], config, tmp_path, progress=False).resume()
        and state.exists()
    )


def test_loss_is_the_validation_loss_of_the_same_examples(runtime, core_registry, tmp_path):
    """`latentreason loss` gives the number training's validation gives, for any weights, with no training."""
    from latentreason import api

    config = _train_config(limit=2, val_limit=3, max_target_tokens=10, batch_size=2, checkpoint_dir=str(tmp_path / "t"))
    trained = api.train(config, registry=core_registry, progress=False, runtime=runtime)
    held_back = config.model_copy(
        update={
            "checkpoint": str(trained.weights),
            "data": config.data.model_copy(update={"split": "train", "limit": 3}),
        }
    )
    report = api.loss(held_back, registry=core_registry, runtime=runtime)
    assert report.examples == 3 and report.weights == [str(trained.weights)]
    assert report.loss == pytest.approx(trained.validation[-1]["loss"], rel=1e-5)
    later = held_back.model_copy(update={"data": held_back.data.model_copy(update={"offset": 3})})
    assert api.loss(later, registry=core_registry, runtime=runtime).loss != pytest.approx(
        report.loss
    )  # other rows, another number


def test_training_refuses_before_it_starts_when_its_thought_audit_has_no_rows(runtime, core_registry, tmp_path):
    from latentreason import api

    config = _train_config(limit=2, val_limit=0, checkpoint_dir=str(tmp_path / "t"))
    near_the_end = config.model_copy(
        update={"audit": config.audit.model_copy(update={"after_training": True, "offset": 1997})}
    )
    with pytest.raises(
        LatentReasonError, match=r"at least 10 held-back rows; train has 3 from row 1997.*after_training=false"
    ):
        api.train(near_the_end, registry=core_registry, progress=False, runtime=runtime)
    assert not (tmp_path / "t").exists()  # nothing was trained


def _bf16_pipeline(core_registry: Registry, adapter: bool = True) -> Pipeline:
    """:func:`_pipeline`'s method on the tiny pair loaded in bfloat16, optionally with a LoRA adapter on the LLM."""
    from latentreason.config import AdapterConfig
    from latentreason.models.runtime import Runtime
    from latentreason.testing import tiny_model

    llm, assistant = tiny_model("qwen2", hidden=64, seed=1), tiny_model("llama", hidden=48, seed=2)
    llm.model.to(torch.bfloat16)
    assistant.model.to(torch.bfloat16)
    lora = AdapterConfig(rank=4, target_modules=["q_proj", "v_proj", "down_proj"]) if adapter else None
    config = load_config(
        overrides={
            "producer": STATES,
            "projector": MLP,
            "data": {"task": "gsm8k"},
            "models": {"dtype": "bfloat16"},
            **({"adapter": lora.model_dump()} if lora else {}),
        }
    )
    return prepare(config, core_registry, runtime=Runtime(llm=llm, assistant=assistant, adapter=lora)).pipeline


def test_bf16_frozen_models_train_float32_masters_with_a_float32_loss(core_registry, tmp_path):
    pytest.importorskip("peft")
    pipeline = _bf16_pipeline(core_registry)
    llm = pipeline.runtime.llm.model
    examples = pipeline.task.load("train", limit=4)
    trainer = Trainer(pipeline, examples, [], TrainConfig(batch_size=2, max_target_tokens=12), tmp_path, progress=False)
    assert set(trainer.modules) == {"projector", "adapter"}
    assert all(p.dtype == torch.float32 for p in trainer.params)
    frozen = [p for name, p in llm.named_parameters() if "lora_" not in name]
    assert frozen and all(p.dtype == torch.bfloat16 and not p.requires_grad for p in frozen)

    targets = [trainer.targets[e.id] for e in examples[:2]]
    _, hidden = training.teacher_forced(pipeline, examples[:2], targets)
    assert hidden.dtype == torch.bfloat16  # the frozen LLM computes in bf16, the adapter inside it included
    loss = training.supervised_loss(pipeline, examples[:2], targets)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    for name, module in trainer.modules.items():
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name  # gradients reach every trained part

    before = [p.detach().clone() for p in trainer.params]
    trainer.optimizer.zero_grad()
    result = trainer.run()
    assert all(p.dtype == torch.float32 for p in trainer.params)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.params))
    assert all(v.dtype == torch.float32 for v in load_file(result.weights).values())


def test_the_loss_on_what_needs_it_equals_the_full_pass_with_the_same_gradients(runtime, core_registry):
    """The head on supervised positions only, the prompt before the thoughts without gradients: nothing changes."""
    from latentreason.components.batching import position_ids
    from latentreason.components.injector import IGNORE_INDEX

    pipeline = _pipeline(runtime, core_registry)
    examples = pipeline.task.load("train", limit=3)
    targets = list(training.gold_targets(pipeline, examples, 20).values())
    params = list(pipeline.projector.parameters())
    torch.manual_seed(0)
    saving = training.supervised_loss(pipeline, examples, targets)
    saving_grads = torch.autograd.grad(saving, params)
    torch.manual_seed(0)
    inputs = pipeline.inputs(examples, targets)
    assert 0 < inputs.fixed_columns < inputs.attention_mask.shape[1] - max(map(len, targets))
    logits = runtime.llm.model(
        inputs_embeds=inputs.inputs_embeds,
        attention_mask=inputs.attention_mask,
        position_ids=position_ids(inputs.attention_mask),
    ).logits  # (B, T, V): every position, one pass with gradients everywhere
    full = torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), inputs.labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
    )
    full_grads = torch.autograd.grad(full, params)
    assert (inputs.labels != IGNORE_INDEX).sum() == sum(len(t) for t in targets)
    assert torch.allclose(saving, full, rtol=1e-5, atol=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(saving_grads, full_grads))
    assert any(g.abs().sum() > 0 for g in full_grads)


def test_a_training_state_is_not_resumed_in_another_dtype(runtime, core_registry, tmp_path):
    config = TrainConfig(epochs=1, batch_size=2, max_target_tokens=8)
    examples = _pipeline(runtime, core_registry).task.load("train", limit=2)
    Trainer(_pipeline(runtime, core_registry), examples, [], config, tmp_path, progress=False).run()
    with pytest.raises(LatentReasonError, match=r"with other models.dtype \(float32 there, bfloat16 here\);"):
        Trainer(_bf16_pipeline(core_registry, adapter=False), examples, [], config, tmp_path, progress=False).resume()


def test_training_logs_history_json_scalars_to_tensorboard(runtime, core_registry, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pipeline = _pipeline(runtime, core_registry)
    examples = pipeline.task.load("train", limit=6)
    config = TrainConfig(epochs=2, batch_size=2, max_target_tokens=8, tensorboard=True)
    result = Trainer(pipeline, examples[2:], examples[:2], config, tmp_path, progress=False).run()
    events = EventAccumulator(str(tmp_path / training.TENSORBOARD_FOLDER))
    events.Reload()
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    values = {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert steps == {"train/loss": [1, 2, 3, 4], "train/lr": [1, 2, 3, 4], "validation/loss": [2, 4]}
    assert values["train/loss"] == pytest.approx([h["loss"] for h in result.history])
    assert values["train/lr"] == pytest.approx([h["lr"] for h in result.history])
    assert values["validation/loss"] == pytest.approx(
        [v["loss"] for v in result.validation]
    )  # at each epoch's last step


@pytest.mark.plugins  # the command line finds the installed plugins
def test_tensorboard_without_the_extra_says_how_to_install_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from latentreason.cli import main

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what the import system does for a missing package
    result = CliRunner().invoke(
        main,
        ["train", "--producer", "softcot", "--llm", str(tmp_path / "no-model"), "--set", "train.tensorboard=true"],
    )
    assert result.exit_code == 2
    assert "pip install 'latentreason[tensorboard]'" in result.output and "no-model" not in result.output
