"""The LoRA adapter on the LLM: injected, trained, saved, loaded, merged; its bad input; on tiny models."""

from __future__ import annotations

import pytest
import torch

from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.config import AdapterConfig, load_config
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.models.adapter import Adapter
from latentreason.models.quantization import int8_twin
from latentreason.models.runtime import Runtime
from latentreason.testing import tiny_model

pytest.importorskip("peft")
ADAPTER = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]}


def _runtime(adapter=ADAPTER, seed=1):
    llm = tiny_model("qwen2", hidden=64, seed=seed)
    return Runtime(llm=llm, adapter=AdapterConfig(**adapter))


def _pipeline(runtime, registry, **overrides):
    """The pipeline of the in-test question producer (``core_registry``) with the adapter."""
    config = load_config(overrides={"producer": {"name": "question"}, "adapter": ADAPTER, **overrides})
    return Pipeline(resolve(config, registry), runtime)


def test_an_untrained_adapter_changes_nothing_and_only_it_trains(core_registry):
    plain = tiny_model("qwen2", hidden=64, seed=1)
    runtime = _runtime()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        assert torch.allclose(runtime.llm.model(input_ids=ids).logits, plain.model(input_ids=ids).logits, atol=1e-6)
    trainable = {n for n, p in runtime.llm.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * 3 * 2  # A and B, 3 targets, 2 layers
    assert set(_pipeline(runtime, core_registry).trainable()) == {"adapter"}


def test_the_adapter_trains_saves_loads_and_merges(tmp_path, core_registry):
    from latentreason.training.trainer import Trainer

    runtime = _runtime()
    pipeline = _pipeline(runtime, core_registry)
    examples = pipeline.task.load(pipeline.task.train_split, limit=4)
    config = pipeline.config.train.model_copy(update={"batch_size": 2, "lr": 0.05, "warmup_steps": 0, "epochs": 2})
    result = Trainer(pipeline, examples, [], config, tmp_path, progress=False).run()
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        trained = runtime.llm.model(input_ids=ids).logits
    fresh = _runtime()
    loaded = _pipeline(fresh, core_registry, checkpoint=str(result.weights))
    assert loaded.untrained == []
    with torch.no_grad():
        assert torch.allclose(fresh.llm.model(input_ids=ids).logits, trained, atol=1e-5)
    merged = _pipeline(_runtime(), core_registry, checkpoint=str(result.weights), adapter={**ADAPTER, "merge": True})
    with torch.no_grad():
        assert torch.allclose(merged.runtime.llm.model(input_ids=ids).logits, trained, atol=1e-4)
    assert all(layer.merged for layer in merged.runtime.adapter.layers())


def test_a_runtime_shared_by_two_methods_does_not_leak_the_first_adapter(tmp_path, core_registry):
    runtime = _runtime()
    for p in runtime.adapter.parameters():
        torch.nn.init.normal_(p)  # as if an earlier method had loaded trained weights
    _pipeline(runtime, core_registry)  # a method without a checkpoint: the adapter starts untrained again
    plain = tiny_model("qwen2", hidden=64, seed=1)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(runtime.llm.model(input_ids=ids).logits, plain.model(input_ids=ids).logits, atol=1e-6)


def test_int8_decoding_keeps_the_adapter_branches_in_float_and_shared():
    runtime = _runtime()
    twin = int8_twin(runtime.llm.model)
    q = twin.model.layers[0].self_attn.q_proj
    assert isinstance(q.lora_A["default"], torch.nn.Linear)
    assert q.lora_A["default"].weight is runtime.llm.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight


def test_bad_adapters_are_refused_each_with_one_clear_error(tmp_path, core_registry):
    with pytest.raises(ConfigError, match="adapter.rank: Input should be greater than 0"):
        load_config(overrides={"adapter": {"rank": 0}})
    with pytest.raises(
        LatentReasonError, match="'query' name no linear layer of this LLM; its linear layers are: .*q_proj"
    ):
        Adapter(tiny_model("qwen2", hidden=64, seed=1).model, AdapterConfig(target_modules=["query"]))
    trained = tmp_path / "rank4.safetensors"
    from latentreason.storage import save_weights

    save_weights(trained, {"adapter": _runtime().adapter}, {"components": {"adapter": ADAPTER}})
    other = _runtime({**ADAPTER, "rank": 2})
    with pytest.raises(
        LatentReasonError, match="does not fit this run: adapter.*has shape .*4.* but this run needs .*2"
    ):
        _pipeline(other, core_registry, checkpoint=str(trained), adapter={**ADAPTER, "rank": 2})
    config = load_config(
        overrides={
            "producer": {"name": "question"},
            "models": {"quantize": "int8"},
            "adapter": {**ADAPTER, "merge": True},
        }
    )
    with pytest.raises(ConfigError, match="adapter.merge folds the adapter into the float weights"):
        resolve(config, core_registry)


@pytest.mark.plugins  # the shipped softcot producer
def test_softcot_trains_its_projector_and_a_lora_together_and_evaluates_both_from_the_checkpoint(tmp_path):
    from latentreason.storage import stored_components
    from latentreason.training.trainer import Trainer

    def softcot(checkpoint=None):
        llm, assistant = tiny_model("qwen2", hidden=64, seed=1), tiny_model("llama", hidden=48, seed=2)
        runtime = Runtime(llm=llm, assistant=assistant, adapter=AdapterConfig(**ADAPTER))
        overrides = {"producer": {"name": "softcot", "options": {"n_thoughts": 2}}, "adapter": ADAPTER}
        config = load_config(overrides=overrides | ({"checkpoint": checkpoint} if checkpoint else {}))
        return Pipeline(resolve(config, Registry()), runtime, default_weights=False)

    torch.manual_seed(0)
    pipeline = softcot()
    assert set(pipeline.trainable()) == {"projector", "adapter"}
    start = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in pipeline.trainable().items()}
    examples = pipeline.task.load(pipeline.task.train_split, limit=4)
    config = pipeline.config.train.model_copy(update={"batch_size": 2, "lr": 0.05, "warmup_steps": 0, "epochs": 2})
    result = Trainer(pipeline, examples, [], config, tmp_path, progress=False).run()
    for name, module in pipeline.trainable().items():  # every tensor learned: the projector's, the LoRA's A and B
        moved = [k for k, v in module.state_dict().items() if not torch.equal(v, start[name][k])]
        assert moved == list(start[name]), name
    assert stored_components(result.weights) == {"projector", "adapter"}
    loaded = softcot(str(result.weights))
    assert loaded.untrained == [] and loaded.checkpoints == [str(result.weights)]
    for name, module in pipeline.trainable().items():
        mine, theirs = module.state_dict(), loaded.trainable()[name].state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), name
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        plain = tiny_model("qwen2", hidden=64, seed=1).model(input_ids=ids).logits
        adapted = loaded.runtime.llm.model(input_ids=ids).logits
        assert torch.allclose(adapted, pipeline.runtime.llm.model(input_ids=ids).logits, atol=1e-5)
        assert not torch.allclose(adapted, plain, atol=1e-3)  # the evaluation decodes through the trained LoRA
    question = examples[:1]
    assert [p.generations for p in loaded.answer(question)] == [p.generations for p in pipeline.answer(question)]


def test_the_merged_folder_computes_what_the_llm_with_its_adapter_computes(tmp_path):
    from transformers import AutoModelForCausalLM

    from latentreason.models.merged import merged_folder

    runtime = _runtime()
    for p in runtime.adapter.parameters():
        torch.nn.init.normal_(p, std=0.1)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        adapted = runtime.llm.model(input_ids=ids).logits
        base = tiny_model("qwen2", hidden=64, seed=1).model(input_ids=ids).logits
    folder = merged_folder(runtime.llm, runtime.adapter, tmp_path)
    assert not any(layer.merged for layer in runtime.adapter.layers())  # left as it was
    assert merged_folder(runtime.llm, runtime.adapter, tmp_path) == folder  # written once per adapter
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert not any("lora" in name for name, _ in loaded.named_parameters())
    with torch.no_grad():
        merged = loaded(input_ids=ids).logits
    assert torch.allclose(merged, adapted, atol=1e-4) and not torch.allclose(merged, base, atol=1e-3)
    with torch.no_grad():
        for p in runtime.adapter.parameters():
            p.mul_(2)
    assert merged_folder(runtime.llm, runtime.adapter, tmp_path) != folder  # another adapter, another folder


def test_an_adapter_trained_on_another_llm_is_refused_before_a_model_loads(tmp_path, core_registry):
    from latentreason.api import training_examples
    from latentreason.storage import save_weights

    runtime = _runtime()
    path = save_weights(tmp_path / "other.safetensors", {"adapter": runtime.adapter}, {"components": {"llm": "gpt2"}})
    config = load_config(overrides={"producer": {"name": "question"}, "adapter": ADAPTER, "checkpoint": str(path)})
    with pytest.raises(ConfigError, match="trained on the LLM 'gpt2', not this run's 'qwen2.5-coder-0.5b-instruct'"):
        resolve(config, core_registry).checked_examples()
    with pytest.raises(ConfigError, match="trained on the LLM 'gpt2'"):
        training_examples(resolve(config, core_registry))  # training reads its data before any model loads
    with pytest.raises(LatentReasonError, match="trained on the LLM 'gpt2'"):
        _pipeline(runtime, core_registry, checkpoint=str(path))
