"""The oracle control (softcot-oracle) on tiny models: it reads the gold, is SoftCoT otherwise, trains, is labelled a control."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from latentreason import api
from latentreason.assembly.prepare import prepare
from latentreason.config import Component, load_config
from latentreason.errors import LatentReasonError
from latentreason.evaluation.runner import evaluate
from latentreason.evaluation.tables import markdown_table, read_cell
from latentreason.storage import read_meta
from latentreason_softcot.oracle import OracleProducer
from latentreason_softcot.producer import SoftCoTOptions, SoftCoTProducer


def _oracle(runtime, gold="answer", **overrides):
    config = load_config(
        overrides={
            "producer": {"name": "softcot-oracle", "options": {"n_thoughts": 3, "gold": gold}},
            "data": {"task": "gsm8k"},
            "generation": {"max_new_tokens": 4},
        }
        | overrides
    )
    return prepare(config, runtime=runtime).pipeline


def test_the_oracle_is_softcot_reading_the_question_and_its_gold_answer(runtime):
    pipeline = _oracle(runtime)
    example = pipeline.task.load("test", limit=1)[0]
    question = pipeline.task.format_question(example)
    oracle = pipeline.producer.produce_for([example], [question], instruction="").vectors  # (1, 3, d)
    softcot = SoftCoTProducer(SoftCoTOptions(n_thoughts=3), runtime)
    told = f"{question}\n\nThe correct final answer is {example.answer}."
    assert torch.equal(oracle, softcot.produce([told], instruction="").vectors)
    assert not torch.allclose(oracle, softcot.produce([question], instruction="").vectors)
    other_gold = replace(example, answer=str(int(example.answer) + 1))
    assert not torch.allclose(oracle, pipeline.producer.produce_for([other_gold], [question], instruction="").vectors)


def test_at_evaluation_the_llm_reads_the_question_alone_and_the_oracle_its_gold(runtime):
    oracle = _oracle(runtime)
    softcot = prepare(
        oracle.config.model_copy(update={"producer": Component(name="softcot", options={"n_thoughts": 3})}),
        runtime=runtime,
    ).pipeline
    softcot.projector.load_state_dict(oracle.projector.state_dict())
    examples = oracle.task.load("test", limit=2)
    with torch.no_grad():
        told, plain = oracle.inputs(examples), softcot.inputs(examples)
        questions = [oracle.task.format_question(ex) for ex in examples]
        expected = oracle.projector(oracle.producer.produce_for(examples, questions, instruction="").vectors)
    assert told.prompts == plain.prompts  # the LLM's prompt holds no gold
    slots = (told.inputs_embeds != plain.inputs_embeds).any(-1)  # (B, T): only the thought positions differ
    assert slots.sum(-1).tolist() == [3, 3]
    assert torch.allclose(told.inputs_embeds[slots].view(2, 3, -1), expected, atol=1e-5)


def test_the_rationale_variant_reads_the_gold_rationale_and_needs_one(runtime):
    producer = _oracle(runtime, gold="rationale").producer
    example = _oracle(runtime).task.load("train", limit=1)[0]
    assert example.rationale
    assert producer.told([example], ["Q?"]) == [f"Q?\n\nA correct solution:\n{example.rationale}"]
    with pytest.raises(LatentReasonError, match="example 'x' has none .* use gold: answer"):
        producer.produce_for([example, replace(example, id="x", rationale=None)], ["Q?", "Q?"], instruction="")


def test_the_oracle_trains_like_softcot_and_is_labelled_a_control(runtime, tmp_path):
    config = load_config(
        overrides={
            "producer": {"name": "softcot-oracle", "options": {"n_thoughts": 2}},
            "data": {"task": "gsm8k", "limit": 2},
            "generation": {"max_new_tokens": 4},
            "train": {"limit": 4, "val_limit": 0, "max_target_tokens": 8, "checkpoint_dir": str(tmp_path / "train")},
        }
    )
    trained = api.train(config, progress=False, runtime=runtime)
    assert read_meta(trained.weights)["components"]["producer"]["name"] == "softcot-oracle"
    pipeline = prepare(config.model_copy(update={"checkpoint": str(trained.weights)}), runtime=runtime).pipeline
    summary = evaluate(pipeline, pipeline.task.load(limit=2), tmp_path / "run", progress=False)
    assert summary.control == OracleProducer.control
    assert "| softcot-oracle (control) |" in summary.table()
    table = markdown_table([read_cell(tmp_path / "run")])
    assert "| softcot-oracle (control) |" in table
    assert "softcot-oracle is a control, not a method (oracle: its assistant reads the gold" in table
