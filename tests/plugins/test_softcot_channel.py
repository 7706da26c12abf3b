"""SoftCoT's channel options on tiny models: placeholder text, read-out layer, standardisation, the LLM as assistant."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from latentreason import api
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.config import ModelsConfig, load_config
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.models.loading import load_hf
from latentreason.models.runtime import Runtime
from latentreason.storage import read_meta, stored_components
from latentreason_softcot.producer import SoftCoTOptions, SoftCoTProducer

QUESTIONS = ["Natalia sold 48 clips in April and half as many in May. How many in total?", "What is 2 + 3?"]


def test_a_placeholder_text_of_one_token_fills_the_thought_positions(runtime, tiny_assistant):
    chosen = SoftCoTProducer(SoftCoTOptions(n_thoughts=3, placeholder=" clips"), runtime)
    clips = tiny_assistant.tokenizer(" clips", add_special_tokens=False)["input_ids"]
    assert len(clips) == 1
    ids, _, _ = chosen._encode(QUESTIONS, 3)  # (B, T)
    assert ids[:, -3:].eq(clips[0]).all()
    default = SoftCoTProducer(SoftCoTOptions(n_thoughts=3), runtime)
    assert not torch.allclose(
        chosen.produce(QUESTIONS, instruction="").vectors, default.produce(QUESTIONS, instruction="").vectors
    )


def test_a_placeholder_text_of_several_tokens_is_one_clear_error(runtime, tiny_assistant):
    pieces = [tiny_assistant.tokenizer.decode([i]) for i in tiny_assistant.tokenizer(" thought")["input_ids"]]
    producer = SoftCoTProducer(SoftCoTOptions(placeholder=" thought"), runtime)
    with pytest.raises(LatentReasonError) as error:
        producer.produce(QUESTIONS, instruction="")
    message = str(error.value)
    assert "producer.options.placeholder" in message and "' thought'" in message
    assert f"{len(pieces)} tokens {pieces!r}" in message


def test_the_layer_option_reads_out_another_hidden_state(runtime, tiny_assistant):
    blocks = tiny_assistant.model.config.num_hidden_layers
    states = {
        layer: SoftCoTProducer(SoftCoTOptions(n_thoughts=3, layer=layer), runtime)
        .produce(QUESTIONS, instruction="")
        .vectors
        for layer in (None, 0, 1, blocks)
    }  # each (B, 3, d)
    assert not torch.allclose(states[1], states[None])
    assert torch.equal(states[blocks], states[None])  # the last block after the final norm is the default
    placeholder = SoftCoTProducer(SoftCoTOptions(), runtime)._placeholder
    embedding = tiny_assistant.embed(torch.tensor([placeholder]))[0]  # (d,): layer 0 is the input embeddings
    assert torch.allclose(states[0], embedding.expand_as(states[0]))
    with pytest.raises(LatentReasonError, match=f"has {blocks} blocks; layer takes 0 .* to {blocks}"):
        SoftCoTProducer(SoftCoTOptions(layer=blocks + 1), runtime).produce(QUESTIONS, instruction="")


def test_read_at_puts_the_thoughts_in_the_users_turn_or_on_its_last_tokens(runtime, tiny_assistant):
    tokenizer = tiny_assistant.tokenizer
    user = SoftCoTProducer(SoftCoTOptions(n_thoughts=3, read_at="user"), runtime)
    ids, mask, start = user._encode(QUESTIONS, 3)  # (B, T), (B, T), (B,)
    for row, at, question in zip(ids, start, QUESTIONS):
        assert row[at : at + 3].eq(user._placeholder).all()
        assert tokenizer.decode(row[:at]).endswith(question)  # right after the question
        assert at + 3 < len(row)  # the user's turn and the assistant's header follow
    text = SoftCoTProducer(SoftCoTOptions(n_thoughts=3, read_at="text"), runtime)
    ids, mask, start = text._encode(QUESTIONS, 3)
    assert not ids[mask.bool()].eq(text._placeholder).any()  # (the tiny tokenizer pads with the placeholder)
    for row, at, question in zip(ids, start, QUESTIONS):
        assert tokenizer.decode(row[at : at + 3]) == tokenizer.decode(tokenizer(question)["input_ids"][-3:])
    states = {
        read_at: SoftCoTProducer(SoftCoTOptions(n_thoughts=3, read_at=read_at), runtime)
        .produce(QUESTIONS, instruction="")
        .vectors
        for read_at in ("turn", "user", "text")
    }  # each (B, 3, d)
    assert not torch.allclose(states["user"], states["turn"]) and not torch.allclose(states["text"], states["user"])
    # the read-out is the state at those positions, whatever the padding: each question alone gives the same
    alone = torch.cat([text.produce([q], instruction="").vectors for q in QUESTIONS])  # (B, 3, d)
    assert torch.allclose(states["text"], alone, atol=1e-5)


def test_read_at_refuses_a_prefix_of_the_assistants_turn_and_softcotpp():
    from latentreason_softcot.softcotpp import SoftCoTPPOptions

    with pytest.raises(ValueError, match="assistant_prefix opens the assistant's turn .* read_at='user'"):
        SoftCoTOptions(read_at="user", assistant_prefix="Here:")
    with pytest.raises(ValueError, match="read_at='text' is SoftCoT's only"):
        SoftCoTPPOptions(read_at="text")


def test_read_at_text_refuses_more_thoughts_than_the_prompt_has_tokens(runtime):
    producer = SoftCoTProducer(SoftCoTOptions(n_thoughts=500, read_at="text"), runtime)
    with pytest.raises(LatentReasonError, match="last 500 tokens of the user's text"):
        producer.produce(["2 + 3?"], instruction="")


def _standardised(tmp_path, **options):
    """A SoftCoT run config with ``standardise`` on (plus ``options``), training on 6 GSM8K rows after 2 held back."""
    return load_config(
        overrides={
            "producer": {"name": "softcot", "options": {"n_thoughts": 2, "standardise": True, **options}},
            "data": {"task": "gsm8k"},
            "train": {
                "limit": 6,
                "val_limit": 2,
                "max_target_tokens": 8,
                "batch_size": 3,
                "checkpoint_dir": str(tmp_path),
            },
        }
    )


def test_standardise_fits_training_statistics_and_stores_them_with_their_provenance(runtime, tmp_path):
    config = _standardised(tmp_path, placeholder=" clips", layer=1)
    trained = api.train(config, progress=False, runtime=runtime)
    assert "producer" in stored_components(trained.weights)
    fitted = read_meta(trained.weights)["components"]["producer"]["fitted"]
    assert fitted["assistant"] == runtime.model_name("assistant") == "tiny-llama-48"
    assert (fitted["placeholder"], fitted["layer"], fitted["questions"]) == (" clips", 1, 6)

    loaded = prepare(config.model_copy(update={"checkpoint": str(trained.weights)}), runtime=runtime).pipeline
    assert loaded.checkpoints == [str(trained.weights)] and loaded.untrained == []
    train_rows = loaded.task.load("train", limit=6, offset=2)  # the training rows: validation's 2 come first
    questions = [loaded.task.format_question(ex) for ex in train_rows]
    vectors = loaded.producer.produce(questions, instruction="", training=True).vectors  # (6, 2, d)
    flat = vectors.flatten(0, 1).double()  # (12, d)
    assert flat.mean(0).abs().max() < 1e-4
    assert torch.allclose(flat.std(0, unbiased=False), torch.ones(flat.shape[1], dtype=torch.float64), atol=1e-4)
    held_back = [loaded.task.format_question(ex) for ex in loaded.task.load("train", limit=2)]
    validation = loaded.producer.produce(held_back, instruction="").vectors
    assert validation.flatten(0, 1).mean(0).abs().max() > 1e-3  # held-back rows were not part of the statistics


def test_statistics_of_another_assistant_placeholder_or_layer_are_refused_before_any_model_loads(
    runtime, tiny_assistant, tmp_path
):
    config = _standardised(tmp_path)
    weights = str(api.train(config, progress=False, runtime=runtime).weights)
    loads = []
    unloaded = Runtime(ModelsConfig(assistant="tiny-llama-48"), load=lambda spec: loads.append(spec) or load_hf(spec))
    for options, wrong in (({"placeholder": " clips"}, "placeholder"), ({"layer": 1}, "layer")):
        other = _standardised(tmp_path, **options).model_copy(update={"checkpoint": weights})
        with pytest.raises(LatentReasonError, match=f"fitted for another setup \\({wrong}: "):
            prepare(other, runtime=unloaded).pipeline
    assert loads == []
    renamed = Runtime(llm=runtime.llm, assistant=replace(tiny_assistant, name="another-assistant"))
    with pytest.raises(LatentReasonError, match="assistant: 'tiny-llama-48' there, 'another-assistant' here"):
        prepare(config.model_copy(update={"checkpoint": weights}), runtime=renamed).pipeline


def test_standardise_without_statistics_says_how_to_get_them(runtime):
    producer = SoftCoTProducer(SoftCoTOptions(standardise=True), runtime)
    with pytest.raises(LatentReasonError, match="needs statistics .* `latentreason train` computes them"):
        producer.produce(QUESTIONS, instruction="")


def test_softcotpp_refuses_standardise_before_any_model_loads():
    config = load_config(overrides={"producer": {"name": "softcotpp", "options": {"standardise": True}}})
    with pytest.raises(ConfigError, match="standardise is SoftCoT's only"):
        resolve(config, Registry())


def test_the_llm_as_assistant_is_loaded_once(tiny_dirs):
    llm_dir, _ = tiny_dirs
    loads = []
    runtime = Runtime(
        ModelsConfig(llm=llm_dir, assistant=llm_dir + "/", dtype="float32"),
        load=lambda spec: loads.append(spec.name) or load_hf(spec),
    )
    config = load_config(
        overrides={
            "models": {"llm": llm_dir, "assistant": llm_dir + "/"},
            "producer": {"name": "softcot", "options": {"n_thoughts": 2}},
            "data": {"task": "gsm8k"},
            "generation": {"max_new_tokens": 4},
        }
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    predictions = pipeline.answer(pipeline.task.load(limit=2))
    assert runtime.assistant is runtime.llm and loads == [llm_dir]
    assert pipeline.producer.thought_dim == runtime.llm.hidden_size
    assert all(0 < p.new_tokens <= 4 for p in predictions)


def test_the_llm_as_assistant_refuses_an_adapter_it_would_read_through(tiny_dirs):
    pytest.importorskip("peft")
    llm_dir, _ = tiny_dirs
    config = load_config(overrides={"models": {"llm": llm_dir, "assistant": llm_dir}, "adapter": {"rank": 2}})
    runtime = Runtime(config.models, adapter=config.adapter)
    with pytest.raises(LatentReasonError, match="names the LLM .* read through the adapter"):
        runtime.assistant
