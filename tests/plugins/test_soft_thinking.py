"""Soft Thinking (``soft-thinking``) on tiny models, against a plain-transformers reference loop."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.config import GenerationConfig, load_config
from latentreason.decoding.generate import Generated, generate
from latentreason.decoding.loop import decode, decode_stream
from latentreason.errors import ConfigError
from latentreason.evaluation.results import prediction_record
from latentreason.models.quantization import int8_twin
from latentreason.models.runtime import Runtime
from latentreason.testing import tiny_model
from latentreason_lightthinker.soft_thinking import SoftThinking, SoftThinkingOptions

QUESTIONS = [
    "Natalia sold 48 clips in April and half as many in May. How many in total?",
    "What is 2 + 3?",
    "Is it common to see frost during some college commencements?",
]
STEPS = 12
GREEDY = GenerationConfig(max_new_tokens=STEPS, stop_at_answer=False)


@pytest.fixture(scope="module")
def llm():
    # Weights at 0.1, not the tiny models' 0.2: at 0.2 the LLM amplifies a difference in its input about
    # fourfold per step, so the float rounding of a batched mixture (1e-7) flips tokens a dozen soft steps on.
    return tiny_model("qwen2", hidden=64, seed=5, initializer_range=0.1)


@pytest.fixture(scope="module")
def inputs(llm):
    return PlaceholderInjector(PlaceholderOptions(), llm).build("Solve it.", QUESTIONS)


def _stream(llm, inputs, controller, config=GREEDY, capacity=2) -> list[Generated]:
    """Decode the prompts with continuous batching: ``capacity`` rows at once, the rest admitted as rows finish."""
    rows = [(dataclasses.replace(inputs, inputs_embeds=e[None], attention_mask=m[None]), [b]) for b, (e, m) in
            enumerate(zip(inputs.inputs_embeds, inputs.attention_mask))]  # fmt: skip
    results = dict(
        decode_stream(llm, lambda free: rows.pop(0) if rows else None, config, controller, capacity=capacity)
    )
    return [results[b] for b in range(len(QUESTIONS))]


def reference_soft_thinking(llm, prompt: torch.Tensor, options: SoftThinkingOptions) -> tuple[list[int], list[int]]:
    """Soft Thinking written out with plain transformers, one prompt ``(T, d)`` at a time, greedy.

    Each step is one forward with ``inputs_embeds`` and ``past_key_values``;
    the mixture is built from the embedding matrix over the whole sorted
    vocabulary. Returns the tokens written and the indices of the soft steps.
    """
    embedding = llm.model.get_input_embeddings().weight  # (V, d)
    marker = llm.tokenizer.encode(options.end_marker, add_special_tokens=False) if options.end_marker else []
    with torch.no_grad():
        out = llm.model.model(inputs_embeds=prompt[None], use_cache=True)  # the prompt: full precision
        past, logits = out.cache, llm.stepper.lm_head(out.last_hidden_state[0, -1])  # (V,)
        tokens: list[int] = []
        soft_steps: list[int] = []
        soft, low = True, 0
        for step in range(STEPS):
            probs = torch.softmax(logits.float() / options.temperature, dim=-1)  # (V,)
            entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
            low = low + 1 if entropy < options.cold_stop_entropy else 0
            budget_spent = options.max_soft_steps is not None and len(soft_steps) >= options.max_soft_steps
            if soft and (low >= options.cold_stop_steps or budget_spent):
                soft = False
            if soft:
                sorted_probs, order = probs.sort(descending=True)  # (V,)
                p = sorted_probs[: options.top_k] / sorted_probs[: options.top_k].sum()
                kept = (torch.cumsum(p, 0) - p < options.top_p) & (p >= options.min_p * p[0])
                p, ids = p[kept] / p[kept].sum(), order[: options.top_k][kept]
                token = int(ids[0])
                vector = (p[:, None] * embedding[ids].float()).sum(0)  # (d,)
                if marker and [*tokens, token][-len(marker) :] == marker:
                    soft, vector = False, embedding[token]
                soft_steps.append(step)
            else:
                token = int(logits.argmax())
                vector = embedding[token]
            tokens.append(token)
            if token in llm.eos_token_ids:
                break
            out = llm.stepper(inputs_embeds=vector.to(embedding.dtype)[None, None], cache=past, use_cache=True)
            past, logits = out.cache, out.logits[0, -1]
    return tokens, soft_steps


def _marker(llm, inputs) -> tuple[str, int]:
    """A one-token text that plain Soft Thinking writes for the first prompt after a few steps, and that step."""
    written = decode(llm, inputs, GREEDY, SoftThinking(SoftThinkingOptions(), Runtime(llm=llm)))[0].token_ids
    for step in range(3, len(written)):
        text = llm.tokenizer.decode([written[step]])
        if (
            llm.tokenizer.encode(text, add_special_tokens=False) == [written[step]]
            and written[step] not in written[:step]
        ):
            return text, step
    raise AssertionError("no marker candidate")


@pytest.mark.parametrize("setting", ["default", "cold-stop", "budget", "marker", "top-p"])
def test_soft_thinking_equals_a_plain_transformers_reference(llm, inputs, setting):
    marker, step = _marker(llm, inputs) if setting == "marker" else (None, 0)
    options = {
        "default": lambda: SoftThinkingOptions(),
        "cold-stop": lambda: SoftThinkingOptions(cold_stop_entropy=5.2, cold_stop_steps=2),
        "budget": lambda: SoftThinkingOptions(max_soft_steps=5),
        "marker": lambda: SoftThinkingOptions(end_marker=marker),
        "top-p": lambda: SoftThinkingOptions(top_k=50, top_p=0.5, min_p=0.05, temperature=1.0),
    }[setting]()
    ours = _stream(llm, inputs, SoftThinking(options, Runtime(llm=llm)))
    for b, out in enumerate(ours):
        prompt = inputs.inputs_embeds[b][inputs.attention_mask[b].bool()]  # (T, d) without padding
        tokens, soft_steps = reference_soft_thinking(llm, prompt, options)
        assert out.token_ids == tokens
        assert out.soft_steps == soft_steps
    soft = [len(out.soft_steps) for out in ours]
    if setting in ("default", "top-p"):
        assert soft == [len(out.token_ids) for out in ours]  # no row ends soft mode on its own
    elif setting == "marker":
        assert ours[0].soft_steps == list(range(step + 1))  # soft up to and including the marker
    else:
        assert min(soft) > 0 and any(n < STEPS for n in soft)  # soft mode ended while a row went on


def test_top_k_1_is_plain_greedy_decoding_exactly(llm, inputs):
    plain = generate(llm, inputs, GREEDY)
    soft = _stream(llm, inputs, SoftThinking(SoftThinkingOptions(top_k=1), Runtime(llm=llm)))
    assert [s.token_ids for s in soft] == [p.token_ids for p in plain]
    assert [s.peak_kv for s in soft] == [p.peak_kv for p in plain]  # one position and one KV entry per step
    assert all(s.soft_steps == list(range(len(s.token_ids))) for s in soft)


def test_the_mixture_changes_what_the_llm_writes(llm, inputs):
    plain = decode(llm, inputs, GREEDY)
    soft = decode(llm, inputs, GREEDY, SoftThinking(SoftThinkingOptions(), Runtime(llm=llm)))
    assert [s.token_ids for s in soft] != [p.token_ids for p in plain]


def test_soft_steps_override_sampling_and_noise_is_seeded(llm, inputs):
    runtime = Runtime(llm=llm)
    sampling = GenerationConfig(max_new_tokens=STEPS, stop_at_answer=False, do_sample=True, temperature=1.0)
    greedy = decode(llm, inputs, GREEDY, SoftThinking(SoftThinkingOptions(), runtime))
    torch.manual_seed(0)
    sampled = decode(llm, inputs, sampling, SoftThinking(SoftThinkingOptions(), runtime))
    assert [s.token_ids for s in sampled] == [g.token_ids for g in greedy]  # every step soft: nothing is drawn
    torch.manual_seed(0)
    after_cold_stop = decode(
        llm, inputs, sampling, SoftThinking(SoftThinkingOptions(cold_stop_entropy=5.2, cold_stop_steps=2), runtime)
    )
    assert any(len(s.soft_steps) < len(s.token_ids) for s in after_cold_stop)
    for noise in ("dirichlet", "gumbel"):
        runs = [
            decode(llm, inputs, GREEDY, SoftThinking(SoftThinkingOptions(noise=noise, seed=1), runtime)) for _ in "ab"
        ]
        tokens = [[out.token_ids for out in run] for run in runs]
        assert tokens[0] == tokens[1]  # the seed fixes the noise
        assert tokens[0] != [g.token_ids for g in greedy]


def test_soft_thinking_runs_with_the_int8_twin(llm, inputs):
    quantized = dataclasses.replace(llm, int8=int8_twin(llm.model))
    runtime = Runtime(llm=quantized)
    plain = decode(quantized, inputs, GREEDY)
    soft = decode(quantized, inputs, GREEDY, SoftThinking(SoftThinkingOptions(top_k=1), runtime))
    assert [s.token_ids for s in soft] == [p.token_ids for p in plain]
    options = SoftThinkingOptions()
    ours = _stream(quantized, inputs, SoftThinking(options, runtime), capacity=1)  # int8 activations scale per batch
    for b, out in enumerate(ours):
        prompt = inputs.inputs_embeds[b][inputs.attention_mask[b].bool()]  # (T, d)
        assert (out.token_ids, out.soft_steps) == reference_soft_thinking(quantized, prompt, options)


def test_a_run_records_the_soft_steps_per_example(tiny_dirs):
    llm_dir, assistant_dir = tiny_dirs
    config = load_config(
        overrides={
            "models": {"llm": llm_dir, "assistant": assistant_dir, "quantize": "int8"},
            "producer": {"name": "cot"},
            "decoder": {"name": "soft-thinking", "options": {"max_soft_steps": 3}},
            "generation": {"max_new_tokens": 6, "stop_at_answer": False},
        }
    )
    pipeline = prepare(config).pipeline
    for prediction in pipeline.answer(pipeline.task.load(limit=2)):
        record = json.loads(json.dumps(prediction_record(prediction, "cpu")))
        assert record["soft_steps"] == [[0, 1, 2]]  # one chain, its first three tokens soft


def test_options_are_checked_before_models_load_and_vllm_is_refused():
    for options, field in [({"top_k": 0}, "top_k"), ({"noise": "uniform"}, "noise"), ({"top_p": 1.5}, "top_p")]:
        config = load_config(
            overrides={"producer": {"name": "cot"}, "decoder": {"name": "soft-thinking", "options": options}}
        )
        with pytest.raises(ConfigError, match=f"decoder.options.{field}"):
            resolve(config, Registry())
    config = load_config(
        overrides={"producer": {"name": "cot"}, "decoder": {"name": "soft-thinking"}, "generation": {"engine": "vllm"}}
    )
    with pytest.raises(ConfigError, match="cannot run decoder 'soft-thinking'.*no per-step hook"):
        resolve(config, Registry())
