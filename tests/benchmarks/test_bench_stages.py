"""Per-stage latency of one SoftCoT batch: assistant forward, projection,
injection, LLM prefill, one cached decoding step, answer extraction.

Without ``--benchmark-enable`` each benchmark runs once (a smoke test). No
test asserts anything about time.
"""

from __future__ import annotations

import pytest
import torch

from latentreason.bench.stages import Stages, decode_step, prefill
from latentreason.components.injector import LLMInputs
from latentreason.decoding.generate import generate


@pytest.fixture(scope="module")
def stages(make_pipeline, examples) -> Stages:
    """The stages of the SoftCoT pipeline on the benchmark batch."""
    return Stages(make_pipeline("softcot"), examples)


@pytest.fixture(scope="module")
def llm_inputs(stages) -> LLMInputs:
    """The injected LLM input of the batch."""
    return stages.inject(*stages.project(stages.produce()))


def test_assistant_forward(benchmark, stages):
    thoughts = benchmark(stages.produce)
    n = stages.pipeline.producer.options.n_thoughts
    assert thoughts.vectors.shape == (len(stages.examples), n, stages.pipeline.runtime.assistant.hidden_size)


def test_projection(benchmark, stages):
    thoughts = stages.produce()
    _, vectors = benchmark(stages.project, thoughts)
    assert vectors.shape == (*thoughts.vectors.shape[:2], stages.llm.hidden_size)


def test_injection(benchmark, stages):
    thoughts, vectors = stages.project(stages.produce())
    inputs = benchmark(stages.inject, thoughts, vectors)
    assert inputs.inputs_embeds.shape[:2] == inputs.attention_mask.shape


def test_llm_prefill(benchmark, stages, llm_inputs):
    cursor = benchmark(prefill, stages.llm, llm_inputs)
    assert cursor.cache.get_seq_length() == llm_inputs.attention_mask.shape[1]
    assert cursor.token.shape == (len(stages.examples), 1)


def test_decode_step(benchmark, stages, llm_inputs, scale):
    cursor = prefill(stages.llm, llm_inputs)
    # Every round starts from the same cache: rewind() drops the entry the last round added.
    after = benchmark.pedantic(
        decode_step, args=(stages.llm, cursor), setup=cursor.rewind, rounds=scale.step_rounds, warmup_rounds=1
    )
    assert after.attention_mask.shape[1] == cursor.attention_mask.shape[1] + 1
    assert after.cache.get_seq_length() == after.attention_mask.shape[1]


def test_answer_extraction(benchmark, stages):
    texts = [stages.pipeline.task.target_text(ex) for ex in stages.examples]  # gold rationale + boxed answer
    scores = benchmark(stages.score, texts)
    assert all(s.strict_correct and s.flexible_correct for s in scores)


def test_stages_build_what_the_pipeline_builds(stages, llm_inputs):
    expected = stages.pipeline.inputs(stages.examples)
    assert torch.equal(llm_inputs.attention_mask, expected.attention_mask)
    assert torch.allclose(llm_inputs.inputs_embeds, expected.inputs_embeds)


def test_raw_decoding_loop_writes_the_tokens_generate_writes(stages, llm_inputs):
    """The loop that ``latentreason bench`` times against generate() decodes the same greedy tokens."""
    n = 4
    cursor = prefill(stages.llm, llm_inputs)
    tokens = [cursor.token]
    for _ in range(n - 1):
        cursor = decode_step(stages.llm, cursor)
        tokens.append(cursor.token)
    loop = torch.cat(tokens, dim=1).tolist()  # (B, n)
    config = stages.pipeline.config.generation.model_copy(update={"max_new_tokens": n, "min_new_tokens": n})
    generated = generate(stages.llm, llm_inputs, config)
    for row, out in zip(loop, generated):
        assert out.token_ids and out.token_ids == row[: len(out.token_ids)]  # generate() cuts at a pad token
