"""The SoftCoT plugin set on tiny models: producer, projectors, pipeline."""

from __future__ import annotations

import pytest
import torch

from latentreason.assembly.prepare import prepare
from latentreason.config import load_config
from latentreason_softcot.linear import LinearProjector
from latentreason_softcot.mlp import MLPOptions, MLPProjector
from latentreason_softcot.norm_matched import NormMatchedOptions
from latentreason_softcot.producer import SoftCoTOptions, SoftCoTProducer

QUESTIONS = ["Natalia sold 48 clips in April and half as many in May. How many in total?", "What is 2 + 3?"]


def test_producer_returns_one_forward_pass_of_hidden_states(runtime, tiny_assistant):
    producer = SoftCoTProducer(SoftCoTOptions(n_thoughts=3, n_thoughts_train=5), runtime)
    thoughts = producer.produce(QUESTIONS, instruction="")
    assert thoughts.vectors.shape == (2, 3, tiny_assistant.hidden_size)
    assert producer.produce(QUESTIONS, instruction="", training=True).vectors.shape == (
        2,
        5,
        tiny_assistant.hidden_size,
    )
    assert producer.thought_dim == tiny_assistant.hidden_size


def test_thoughts_do_not_depend_on_batch_padding(runtime):
    producer = SoftCoTProducer(SoftCoTOptions(n_thoughts=4), runtime)
    batched = producer.produce(QUESTIONS, instruction="").vectors  # the short question is left-padded here
    alone = producer.produce(QUESTIONS[1:], instruction="").vectors
    assert torch.allclose(batched[1], alone[0], atol=1e-5)


def test_projectors_map_widths_and_match_the_embedding_norm():
    thoughts = torch.randn(2, 4, 48)  # (B, N, d_assistant)
    for projector in (
        LinearProjector(NormMatchedOptions(), 48, 64, embed_norm=0.5),
        MLPProjector(MLPOptions(hidden=32), 48, 64, embed_norm=0.5),
    ):
        out = projector(thoughts)
        assert out.shape == (2, 4, 64)
        assert torch.allclose(out.norm(dim=-1), torch.full((2, 4), 0.5), atol=1e-5)
    raw = LinearProjector(NormMatchedOptions(match_norm=False), 48, 64, embed_norm=0.5)
    assert not hasattr(raw, "log_norm")


@pytest.mark.parametrize("producer", ["softcot", "cot"])
def test_pipeline_answers_and_scores_a_batch(runtime, producer):
    config = load_config(
        overrides={
            "producer": {"name": producer},
            "data": {"task": "gsm8k"},
            "generation": {"max_new_tokens": 6},
        }
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    examples = pipeline.task.load(limit=2)
    predictions = pipeline.answer(examples)
    assert [p.example.id for p in predictions] == [e.id for e in examples]
    for p in predictions:
        assert 0 < p.new_tokens <= 6
        assert p.score == pipeline.evaluator.score(p.generations[0], p.example)  # the chain's own score
        assert ("<|box_start|>" in p.prompt) == (producer == "softcot")
    assert ("projector" in pipeline.trainable()) == (producer == "softcot")
