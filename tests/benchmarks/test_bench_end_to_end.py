"""End-to-end ``Pipeline.answer`` latency per producer, every chain forced to the same length.

Without ``--benchmark-enable`` each benchmark runs once (a smoke test). No
test asserts anything about time.
"""

from __future__ import annotations

import pytest

from latentreason.bench.measure import answer_forced

PRODUCERS = ["cot", "softcot", "pause", "coconut-frozen", "assist-cot"]


@pytest.mark.parametrize("producer", PRODUCERS)
def test_answer_end_to_end(benchmark, make_pipeline, examples, scale, producer):
    pipeline = make_pipeline(producer)
    predictions = benchmark.pedantic(lambda: answer_forced(pipeline, examples)[0], rounds=scale.rounds, warmup_rounds=1)
    benchmark.extra_info["examples"] = len(examples)
    benchmark.extra_info["new_tokens"] = sum(p.new_tokens for p in predictions)
    assert [p.example.id for p in predictions] == [ex.id for ex in examples]
    assert all(p.new_tokens <= scale.max_new_tokens for p in predictions)
