"""SoftCoT++ on tiny models: thought sets, gradients, per-question contrastive loss, voting, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.assembly.voting import majority_vote
from latentreason.config import TrainConfig, load_config
from latentreason.errors import ConfigError
from latentreason.storage import read_meta, stored_components
from latentreason.training.trainer import Trainer, supervised_loss
from latentreason_softcot.softcotpp import SoftCoTPPOptions, SoftCoTPPProducer, contrastive_loss

QUESTIONS = ["Natalia sold 48 clips in April and half as many in May. How many in total?", "What is 2 + 3?"]


def _pipeline(runtime, seed=0, checkpoint=None, generation=None, **options):
    torch.manual_seed(seed)  # the initial embeddings' noise and the projector
    config = load_config(
        overrides={
            "producer": {
                "name": "softcotpp",
                "options": {"n_thoughts": 2, "n_thoughts_train": 3, "sets": 3, **options},
            },
            "data": {"task": "gsm8k"},
            "checkpoint": checkpoint,
            "generation": {"max_new_tokens": 4, **(generation or {})},
        }
    )
    return prepare(config, runtime=runtime).pipeline


def _targets(pipeline, examples):
    tokenizer = pipeline.runtime.llm.tokenizer
    return [tokenizer(pipeline.task.target_text(e), add_special_tokens=False)["input_ids"][:12] for e in examples]


def _frozen(runtime):
    return {
        f"{role}.{k}": v.clone()
        for role in ("llm", "assistant")
        for k, v in getattr(runtime, role).model.state_dict().items()
    }


def test_is_registered_with_a_linear_projector_and_checks_its_options():
    registry = Registry()
    assert "softcotpp" in registry.names("producer")
    plan = resolve(load_config(overrides={"producer": {"name": "softcotpp"}}), registry)
    assert plan.projector.name == "linear"
    assert plan.producer.options == SoftCoTPPOptions(sets=4, contrastive_weight=0.1, temperature=0.1)
    bad = load_config(
        overrides={
            "producer": {"name": "softcotpp", "options": {"sets": 0, "temperature": 0, "contrastive_weight": -1}}
        }
    )
    with pytest.raises(ConfigError) as err:
        resolve(bad, registry)
    assert len(err.value.problems) == 3


def test_each_set_gives_its_own_thoughts_grouped_per_question(runtime, tiny_assistant):
    producer = SoftCoTPPProducer(SoftCoTPPOptions(n_thoughts=2, n_thoughts_train=5, sets=3), runtime)
    initial = producer.trainable()["initial"]
    assert initial.shape == (3, 5, tiny_assistant.hidden_size)  # (K, N_max, d_assistant)
    thoughts = producer.produce(QUESTIONS, instruction="")
    assert thoughts.sets == 3 and thoughts.loss is None
    assert thoughts.vectors.shape == (6, 2, tiny_assistant.hidden_size)  # (B*K, N, d_assistant)
    assert producer.produce(QUESTIONS, instruction="", training=True).vectors.shape == (
        6,
        5,
        tiny_assistant.hidden_size,
    )
    for question in (0, 1):
        rows = thoughts.vectors[question * 3 : question * 3 + 3]
        assert all(not torch.allclose(rows[j], rows[k], atol=1e-3) for j in range(3) for k in range(j + 1, 3))
    alone = producer.produce(QUESTIONS[1:], instruction="").vectors  # (K, N, d): question 1 by itself, unpadded
    assert torch.allclose(thoughts.vectors[3:], alone, atol=1e-5)


def test_first_thoughts_do_not_depend_on_how_many_placeholders_follow(runtime):
    options = SoftCoTPPOptions(n_thoughts=4, n_thoughts_train=32, sets=2, instruction="Think about the problem.")
    producer = SoftCoTPPProducer(options, runtime)
    few = producer.produce(QUESTIONS, instruction="").vectors  # (B*K, 4, d)
    with torch.no_grad():
        many = producer.produce(QUESTIONS, instruction="", training=True).vectors  # (B*K, 32, d)
    assert torch.allclose(few, many[:, :4], atol=1e-5)


def test_a_training_step_moves_the_initial_embeddings_through_the_frozen_assistant(runtime, tmp_path):
    pipeline = _pipeline(runtime)
    examples = pipeline.task.load("train", limit=2)
    initial = pipeline.trainable()["producer"]["initial"]
    supervised_loss(pipeline, examples, _targets(pipeline, examples)).backward()
    assert initial.grad is not None and (initial.grad.norm(dim=-1) > 0).all()  # every set and position learns
    assert all(p.grad is None for p in runtime.assistant.model.parameters())
    initial.grad = None

    before, frozen = initial.detach().clone(), _frozen(runtime)
    config = TrainConfig(epochs=1, batch_size=2, lr=1e-2, warmup_steps=0, max_target_tokens=12)
    Trainer(pipeline, examples, [], config, tmp_path, progress=False).run()
    assert not torch.allclose(initial.detach(), before)
    assert all(torch.equal(v, frozen[k]) for k, v in _frozen(runtime).items())


def test_contrastive_loss_separates_the_sets_of_each_question_only():
    torch.manual_seed(0)
    first, second = torch.randn(3, 2, 8), torch.randn(3, 2, 8)  # (K, N, d) for two questions
    both = contrastive_loss(torch.cat([first, second]), 3, 0.5)
    assert torch.allclose(both, (contrastive_loss(first, 3, 0.5) + contrastive_loss(second, 3, 0.5)) / 2)
    same = torch.randn(1, 2, 8).expand(3, -1, -1)  # three identical sets: all logits equal
    assert torch.allclose(contrastive_loss(same, 3, 0.1), torch.tensor(math.log(3)))
    apart = torch.eye(3).unsqueeze(1).expand(-1, 2, -1)  # orthogonal sets: far lower loss
    assert contrastive_loss(apart, 3, 0.1) < 1e-3


def test_centring_sees_sets_that_share_a_dominant_direction():
    torch.manual_seed(0)
    common = torch.zeros(64)
    common[0] = 100.0  # like the assistant's final states: one huge shared component
    thoughts = common + torch.randn(4, 2, 64)  # (K=4, N=2, d): one question, sets differing by noise
    assert contrastive_loss(thoughts, 4, 0.1).item() > 0.98 * math.log(4)  # alike to a plain cosine: no signal
    assert contrastive_loss(thoughts, 4, 0.1, centre=True).item() < 0.5 * math.log(4)  # told apart once centred
    with pytest.raises(ValueError, match="centre needs at least 3 sets"):
        SoftCoTPPOptions(sets=2, centre=True)


def test_the_producer_averages_the_contrastive_loss_over_questions(runtime):
    options = SoftCoTPPOptions(n_thoughts=2, n_thoughts_train=3, sets=3, temperature=1.0, contrastive_weight=0.5)
    producer = SoftCoTPPProducer(options, runtime)
    batch = producer.produce(QUESTIONS, instruction="", training=True).loss
    single = [producer.produce([q], instruction="", training=True).loss for q in QUESTIONS]
    assert batch > 0.1 and not torch.allclose(single[0], single[1])
    assert torch.allclose(batch, (single[0] + single[1]) / 2, atol=1e-5)
    assert producer.produce(QUESTIONS, instruction="").loss is None  # training only


def test_zero_contrastive_weight_gives_exactly_the_nll(runtime):
    plain = _pipeline(runtime, contrastive_weight=0.0)
    weighted = _pipeline(runtime, contrastive_weight=0.5)  # the same seed: the same initial embeddings and projector
    examples = plain.task.load("train", limit=2)
    targets = _targets(plain, examples)
    questions = [plain.task.format_question(e) for e in examples]
    assert plain.producer.produce(questions, instruction="", training=True).loss is None
    term = weighted.producer.produce(questions, instruction="", training=True).loss
    assert term > 0
    with torch.no_grad():
        difference = supervised_loss(weighted, examples, targets) - supervised_loss(plain, examples, targets)
    assert torch.allclose(difference, term.detach(), atol=1e-6)


def test_answer_votes_over_the_chains_of_all_sets(runtime):
    pipeline = _pipeline(runtime)
    examples = pipeline.task.load(limit=2)
    inputs = pipeline.inputs(examples)
    assert inputs.group == 3 and len(inputs.prompts) == 6 and inputs.loss is None
    predictions = pipeline.answer(examples)
    assert [p.example.id for p in predictions] == [e.id for e in examples]
    for i, p in enumerate(predictions):
        assert len(p.generations) == 3 and p.prompt == inputs.prompts[i * 3]
        assert p.score == majority_vote([pipeline.evaluator.score(g, p.example) for g in p.generations])
        assert 0 < p.new_tokens <= 3 * 4

    sampled = _pipeline(runtime, generation={"samples": 2, "do_sample": True}).answer(examples[:1])
    assert len(sampled) == 1 and len(sampled[0].generations) == 6  # K sets x 2 samples


def test_checkpoint_round_trip_restores_the_initial_embeddings(runtime, tmp_path):
    trained = _pipeline(runtime)
    examples = trained.task.load("train", limit=2)
    config = TrainConfig(epochs=1, batch_size=2, lr=1e-2, warmup_steps=0, max_target_tokens=12)
    weights = Trainer(trained, examples, [], config, tmp_path, progress=False).run().weights
    assert stored_components(weights) == {"producer", "projector"}
    assert read_meta(weights)["components"]["producer"]["name"] == "softcotpp"

    fresh = _pipeline(runtime, seed=1)
    assert not torch.allclose(fresh.trainable()["producer"]["initial"], trained.trainable()["producer"]["initial"])
    loaded = _pipeline(runtime, seed=1, checkpoint=str(weights))
    for name, module in trained.trainable().items():
        for key, value in module.state_dict().items():
            assert torch.equal(loaded.trainable()[name].state_dict()[key], value), f"{name}.{key}"
    questions = [trained.task.format_question(e) for e in examples]
    loaded_thoughts = loaded.producer.produce(questions, instruction="").vectors
    assert torch.allclose(loaded_thoughts, trained.producer.produce(questions, instruction="").vectors)
