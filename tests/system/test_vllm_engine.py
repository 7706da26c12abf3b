"""``generation.engine: vllm`` against the transformers engine (slow: vLLM starts in minutes; run with ``-m slow``).

Skipped unless vLLM's environment is set up (``latentreason vllm-setup``,
or ``$LATENTREASON_VLLM_PYTHON``).
"""

from __future__ import annotations

import pytest
import torch

from latentreason import load_config
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.errors import LatentReasonError
from latentreason.models.runtime import Runtime
from latentreason.models.vllm_env import vllm_python
from latentreason.models.zoo import is_cached
from latentreason.testing import save_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _vllm_set_up():
    try:
        vllm_python()
    except LatentReasonError as exc:
        pytest.skip(str(exc))


def _texts(config, runtime) -> dict[str, str]:
    pipeline = prepare(config, runtime=runtime).pipeline
    return {w.example.id: w.chains[0].text for w in pipeline.chains(pipeline.plan.examples())}


@pytest.mark.parametrize("producer", ["cot", "softcot"])
def test_vllm_writes_the_transformers_engines_greedy_text_on_the_real_pair(producer):
    config = load_config(
        overrides={
            "producer": {"name": producer},
            "models": {"dtype": "float32"},
            "data": {"task": "gsm8k", "limit": 4},
            "generation": {"max_new_tokens": 96},
        }
    )
    if not (is_cached(config.models.llm) and is_cached(config.models.assistant)):
        pytest.skip("default models not cached: run `latentreason models fetch` first")
    runtime = Runtime(config.models, Registry().load_model)
    vllm = config.model_copy(update={"generation": config.generation.model_copy(update={"engine": "vllm"})})
    assert _texts(vllm, runtime) == _texts(config, runtime)


def test_vllm_writes_the_transformers_engines_greedy_text_on_tiny_models(tiny_dirs, tmp_path):
    # vLLM's CPU attention has kernels for head sizes from 32 up: hidden 256 over 4 heads
    llm, assistant = str(save_tiny_model(tmp_path / "llm", "qwen2", hidden=256, seed=1)), tiny_dirs[1]
    config = load_config(
        overrides={
            "producer": {"name": "softcot", "options": {"n_thoughts": 2}},
            "models": {"llm": llm, "assistant": assistant, "device": "cpu", "dtype": "float32"},
            "data": {"task": "gsm8k", "limit": 3},
            "generation": {"max_new_tokens": 12, "stop_at_answer": False},
        }
    )
    runtime = Runtime(config.models, Registry().load_model)
    vllm = config.model_copy(update={"generation": config.generation.model_copy(update={"engine": "vllm"})})
    theirs = _texts(vllm, runtime)
    assert theirs == _texts(config, runtime)


def test_vllm_writes_the_transformers_engines_greedy_text_after_a_latent_prefix_with_a_merged_adapter(tmp_path):
    from latentreason.storage import save_weights

    llm = str(save_tiny_model(tmp_path / "llm", "qwen2", hidden=256, seed=1))  # vLLM's CPU kernels: heads of 32+
    config = load_config(
        overrides={
            "producer": {"name": "codi", "options": {"latent_steps": 3}},
            "adapter": {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]},
            "models": {"llm": llm, "device": "cpu", "dtype": "float32"},
            "data": {"task": "gsm8k", "limit": 3},
            "generation": {"max_new_tokens": 12, "stop_at_answer": False},
        }
    )
    runtime = Runtime(config.models, Registry().load_model, config.adapter)
    trained = prepare(config, runtime=runtime, default_weights=False).pipeline
    torch.manual_seed(0)
    for name, p in runtime.llm.model.named_parameters():
        if "lora_B" in name:  # a trained-looking adapter, so that vLLM decodes the base model only if it is lost
            torch.nn.init.normal_(p, std=0.05)
    weights = save_weights(tmp_path / "codi.safetensors", trained.trainable(), {"components": trained.components()})
    config = config.model_copy(update={"checkpoint": str(weights)})
    vllm = config.model_copy(update={"generation": config.generation.model_copy(update={"engine": "vllm"})})
    theirs = _texts(vllm, runtime)
    assert theirs == _texts(config, runtime)


def test_vllm_samples_several_chains_per_problem_when_prefills_are_split(tmp_path):
    # 16 problems x 4 chains of ~150 prompt tokens are more than the 4096 tokens vLLM's CPU step takes, so
    # prefills are split over steps; a chain seeded on its own would then need vLLM to rewind its generator,
    # which a CPU generator cannot ("CPU Generator does not use offset"): the engine died there
    llm = str(save_tiny_model(tmp_path / "llm", "qwen2", hidden=256, seed=1))
    config = load_config(
        overrides={
            "producer": {"name": "cot"},
            "models": {"llm": llm, "device": "cpu", "dtype": "float32"},
            "data": {"task": "gsm8k", "limit": 16},
            "generation": {
                "engine": "vllm",
                "batch_size": 64,
                "max_new_tokens": 8,
                "stop_at_answer": False,
                "do_sample": True,
                "samples": 4,
                "temperature": 1.0,
            },
        }
    )
    pipeline = prepare(config).pipeline
    written = list(pipeline.chains(pipeline.plan.examples()))
    prompt = pipeline.runtime.llm.tokenizer(written[0].prompt)["input_ids"]
    assert len(written) * 4 * len(prompt) > 4096
    assert [len(w.chains) for w in written] == [4] * 16
    assert len({c.text for w in written for c in w.chains}) > 16  # sampled: chains of one problem differ
