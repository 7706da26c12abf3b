"""The real default pair on two GSM8K questions (slow: run with ``-m slow``)."""

from __future__ import annotations

import json

import pytest

from latentreason import load_config, run
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.models.runtime import Runtime
from latentreason.models.zoo import is_cached

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_runtime():
    config = load_config()
    if not (is_cached(config.models.llm) and is_cached(config.models.assistant)):
        pytest.skip("default models not cached: run `latentreason models fetch` first")
    return Runtime(config.models, Registry().load_model)


@pytest.mark.parametrize("producer", ["cot", "softcot"])
def test_default_pair_answers_two_gsm8k_questions(real_runtime, producer, tmp_path):
    config = load_config(
        overrides={
            "producer": {"name": producer},
            "data": {"task": "gsm8k", "limit": 2},
            "generation": {"max_new_tokens": 256},
        }
    )
    summary = run(config, output=tmp_path, progress=False, runtime=real_runtime)
    assert summary.n == 2
    records = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    for record in records:
        assert record["new_tokens"] > 10
        assert any(ch.isdigit() for ch in record["generation"])
        assert record["flexible"] is not None  # the LLM wrote a number we could extract
    if producer == "softcot":
        assert records[0]["prompt"].count("<|endoftext|>") == 4  # the 4 soft-thought positions


def test_default_pair_softcotpp_writes_one_voted_chain_per_thought_set(real_runtime, tmp_path):
    config = load_config(
        overrides={
            "producer": {"name": "softcotpp", "options": {"sets": 3}},
            "data": {"task": "gsm8k", "limit": 2},
            "generation": {"max_new_tokens": 48},
        }
    )
    summary = run(config, output=tmp_path, progress=False, runtime=real_runtime)
    records = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert summary.n == 2 and all(len(r["samples"]) == 3 and r["samples"][0] == r["generation"] for r in records)
    assert all(any(ch.isdigit() for ch in chain) for r in records for chain in r["samples"])


def test_default_pair_trains_a_trigger_and_reinjects_where_it_fires(real_runtime, tmp_path):
    from latentreason.api import train_trigger

    settings = {
        "producer": {"name": "cot"},
        "data": {"task": "gsm8k", "limit": 2},
        "train": {"limit": 24, "val_limit": 8, "max_target_tokens": 96},
        "generation": {"max_new_tokens": 96},
    }
    report = train_trigger(
        load_config(overrides=settings), out=tmp_path / "trigger.safetensors", progress=False, runtime=real_runtime
    )
    assert report.chosen.f1 > 0.8  # a line break ends a paragraph, and the LLM's hidden state shows it
    decoding = load_config(
        overrides=settings
        | {
            "decoder": {
                "name": "reinject",
                "options": {"segment": "classifier", "trigger": str(report.path), "keep_text": True},
            }
        }
    )
    run(decoding, output=tmp_path / "run", progress=False, runtime=real_runtime)
    pipeline = prepare(decoding, runtime=real_runtime).pipeline
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    for record, example in zip(records, pipeline.plan.examples()):
        prompt = int(pipeline.inputs([example]).attention_mask.sum())
        # keep_text leaves every token visible, so the peak is prompt + generated + 2 vectors per re-injection
        fired = (record["peak_kv"] - prompt - record["new_tokens"]) / 2
        assert fired >= 1 and fired <= record["generation"].count("\n") + record["new_tokens"] // 48 + 1


def test_the_audit_of_the_shipped_softcot_projector_finds_the_documented_collapse(real_runtime):
    """Issue #24 on rows 1100-1163: the LLM receives nearly one vector for every question, yet the states carry it."""
    from latentreason.api import thought_audit

    config = load_config(
        overrides={
            "producer": {"name": "softcot"},
            "data": {"task": "gsm8k", "split": "train", "offset": 1100, "limit": 64},
        }
    )
    audit = thought_audit(config, runtime=real_runtime)
    assert [s.stage for s in audit.stages] == ["producer", "projected", "llm input"]
    received = audit.final
    assert received.specific_share < 1e-3 and received.cosine > 0.999  # documented: 4.3e-5 and 0.99996
    assert 0.5 < received.norm_ratio < 2  # the projector matches the token embeddings' scale
    assert audit.stages[0].specific_share > received.specific_share  # the projector passes less of what differs
    assert audit.attention is not None and 0 < audit.attention.thoughts < 1 and 0 < audit.attention.before < 1
    dollar = audit.probes["producer"]["dollar"]  # the question is in the states all the same (0.97 vs 0.70 on 320)
    assert dollar.accuracy > dollar.chance


def test_default_pair_channel_options_read_out_other_states(real_runtime):
    """`placeholder: " thought"` is one SmolLM2 token, and each channel option changes the assistant's states."""
    from latentreason_softcot.producer import SoftCoTOptions, SoftCoTProducer

    questions = ["Natalia sold 48 clips in April and half as many in May. How many in total?", "What is 2 + 3?"]
    states = {
        name: SoftCoTProducer(SoftCoTOptions(**options), real_runtime).produce(questions, instruction="").vectors
        for name, options in {"default": {}, "thought": {"placeholder": " thought"}, "middle": {"layer": 15}}.items()
    }  # each (2, 4, 576)
    assert states["default"].shape == (2, 4, 576)
    assert not any(states[name].allclose(states["default"]) for name in ("thought", "middle"))


def test_the_llm_as_its_own_assistant_loads_once(tmp_path):
    config = load_config(overrides={"models": {"assistant": "qwen2.5-coder-0.5b-instruct"}})
    if not is_cached(config.models.llm):
        pytest.skip("default LLM not cached: run `latentreason models fetch` first")
    loads = []
    registry = Registry()
    runtime = Runtime(config.models, lambda spec: loads.append(spec.name) or registry.load_model(spec))
    summary = run(
        config.model_copy(
            update={
                "data": config.data.model_copy(update={"task": "gsm8k", "limit": 2}),
                "generation": config.generation.model_copy(update={"max_new_tokens": 64}),
            }
        ),
        output=tmp_path,
        progress=False,
        runtime=runtime,
    )
    assert summary.n == 2 and runtime.assistant is runtime.llm and loads == ["qwen2.5-coder-0.5b-instruct"]
