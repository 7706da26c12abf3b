"""Baseline producers on tiny models: input construction and generation paths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.components.batching import pad_left, position_ids
from latentreason.components.prompting import SLOT, encode_chat
from latentreason.config import load_config
from latentreason.errors import ConfigError
from latentreason_baselines.coconut_frozen import FrozenCoconut, FrozenCoconutOptions

QUESTIONS = ["Natalia sold 48 clips in April and half as many in May. How many in total?", "What is 2 + 3?"]


def _pipeline(runtime, producer, options=None, **generation):
    config = load_config(
        overrides={
            "producer": {"name": producer, "options": options or {}},
            "data": {"task": "gsm8k"},
            "generation": {"max_new_tokens": 4, **generation},
        }
    )
    return prepare(config, runtime=runtime).pipeline


def test_pause_tokens_keep_their_plain_embeddings(runtime):
    pipeline = _pipeline(runtime, "pause", {"n_thoughts": 3})
    examples = pipeline.task.load(limit=2)
    inputs = pipeline.inputs(examples)
    llm = runtime.llm
    placeholder = llm.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    questions = [pipeline.task.format_question(e) for e in examples]
    span = [
        llm.tokenizer.convert_tokens_to_ids("<|box_start|>"),
        *[placeholder] * 3,
        llm.tokenizer.convert_tokens_to_ids("<|box_end|>"),
    ]
    rows = [encode_chat(llm.tokenizer, pipeline.task.instruction, f"{q}\n\n{SLOT}", span)[0] for q in questions]
    expected = llm.embed(pad_left(rows, llm.tokenizer.pad_token_id))
    assert torch.allclose(inputs.inputs_embeds, expected)
    assert pipeline.trainable() == {}


def test_trained_pause_tokens_start_as_pause_tokens_and_are_trainable(runtime):
    trained = _pipeline(runtime, "pause-trained", {"n_thoughts": 2})
    plain = _pipeline(runtime, "pause", {"n_thoughts": 2})
    examples = trained.task.load(limit=1)
    assert torch.allclose(trained.inputs(examples).inputs_embeds, plain.inputs(examples).inputs_embeds)
    module = trained.trainable()["producer"]
    assert module["embeddings"].shape == (2, runtime.llm.hidden_size)
    assert module["embeddings"].requires_grad


def test_assist_cot_puts_the_assistant_hint_in_the_prompt(runtime):
    pipeline = _pipeline(runtime, "assist-cot", {"max_hint_tokens": 5})
    examples = pipeline.task.load(limit=2)
    thoughts = pipeline.producer.produce([pipeline.task.format_question(e) for e in examples], instruction="")
    assert thoughts.vectors is None and len(thoughts.hints) == 2
    inputs = pipeline.inputs(examples)
    assert all("Hints from an assistant:" in p for p in inputs.prompts)
    assert len(pipeline.answer(examples)) == 2


def test_frozen_coconut_recurrence_with_cache_equals_recomputation(runtime):
    producer = FrozenCoconut(FrozenCoconutOptions(n_thoughts=3), runtime)
    thoughts = producer.produce(QUESTIONS[1:], instruction="Solve it.").vectors  # (1, 3, d)
    assert thoughts.shape == (1, 3, runtime.llm.hidden_size)
    llm = runtime.llm
    box = llm.tokenizer.convert_tokens_to_ids("<|box_start|>")
    ids, start = encode_chat(llm.tokenizer, "Solve it.", f"{QUESTIONS[1]}\n\n{SLOT}", [box])
    prefix = llm.embed(torch.tensor([ids[: start + 1]]))  # (1, T, d)
    for k in range(3):  # recompute step k from scratch, without a cache
        embeds = torch.cat([prefix, thoughts[:, :k]], dim=1)
        state = llm.model.base_model(inputs_embeds=embeds).last_hidden_state[:, -1]
        state = F.normalize(state, dim=-1) * llm.embed_norm
        assert torch.allclose(state, thoughts[:, k], atol=1e-4)


def test_frozen_coconut_thoughts_do_not_depend_on_batch_padding(runtime):
    producer = FrozenCoconut(FrozenCoconutOptions(n_thoughts=2), runtime)
    batched = producer.produce(QUESTIONS, instruction="Solve it.").vectors
    alone = producer.produce(QUESTIONS[1:], instruction="Solve it.").vectors
    assert torch.allclose(batched[1], alone[0], atol=1e-4)


def test_self_consistency_samples_and_votes(runtime):
    torch.manual_seed(0)
    pipeline = _pipeline(runtime, "cot", samples=3, do_sample=True)
    predictions = pipeline.answer(pipeline.task.load(limit=2))
    assert [len(p.generations) for p in predictions] == [3, 3]
    assert all(p.new_tokens <= 12 for p in predictions)


def test_position_ids_restart_after_left_padding():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


def _slot_vectors(pipeline, examples):
    """The vectors the LLM reads at each prompt's thought positions ``(B, N, d)``."""
    with torch.no_grad():
        embeds = pipeline.inputs(examples).inputs_embeds  # (B, T, d)
    n = pipeline.producer.options.n_thoughts
    rows = []
    for b, ex in enumerate(examples):
        ids, slots = pipeline.injector._encode(pipeline.instruction, pipeline.task.format_question(ex), n, None)
        offset = embeds.shape[1] - len(ids)  # left padding
        rows.append(embeds[b, [offset + i for i in slots]])
    return torch.stack(rows)


def _embedded(llm, texts, n):
    """The LLM's embeddings of each text's tokens, padded to ``n`` by repeating the last ``(B, n, d)``."""
    rows = []
    for text in texts:
        ids = llm.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) < n  # the padding is exercised
        rows.append(ids + ids[-1:] * (n - len(ids)))
    with torch.no_grad():
        return llm.embed(torch.tensor(rows))


def test_the_answer_embedding_control_injects_the_llms_embeddings_of_the_templated_answer(runtime):
    pipeline = _pipeline(runtime, "answer-embedding-control", {"n_thoughts": 12, "template": " So it is {answer}."})
    examples = pipeline.task.load(limit=2)
    expected = _embedded(runtime.llm, [f" So it is {ex.answer}." for ex in examples], 12)
    assert torch.equal(_slot_vectors(pipeline, examples), expected)
    assert pipeline.plan.projector.name == "identity" and pipeline.trainable() == {}


def test_the_answer_embedding_control_keeps_the_last_tokens_of_a_long_text(runtime):
    pipeline = _pipeline(runtime, "answer-embedding-control", {"n_thoughts": 2})
    example = pipeline.task.load(limit=1)[0]
    ids = runtime.llm.tokenizer(f" The answer is {example.answer}.", add_special_tokens=False)["input_ids"]
    assert len(ids) > 2 and pipeline.producer.slot_ids(example) == ids[-2:]


def test_the_wrong_answer_variant_reads_the_next_examples_answer(runtime):
    config = load_config(
        overrides={
            "producer": {"name": "answer-embedding-control", "options": {"n_thoughts": 12}},
            "data": {"task": "gsm8k", "split": "train"},
            "thoughts_from": "next",
        }
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    split = pipeline.task.load("train", limit=3)
    assert len({ex.answer for ex in split}) == 3  # so the slots must change
    expected = _embedded(runtime.llm, [f" The answer is {ex.answer}." for ex in split[1:3]], 12)
    assert torch.equal(_slot_vectors(pipeline, split[:2]), expected)


def test_the_answer_embedding_template_must_name_the_answer():
    config = load_config(overrides={"producer": {"name": "answer-embedding-control", "options": {"template": "none"}}})
    with pytest.raises(ConfigError, match="template.*must contain {answer}"):
        resolve(config, Registry())
