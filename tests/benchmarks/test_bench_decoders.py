"""The decoding loop with each shipped decoding controller against plain decoding, on the benchmark models.

Without ``--benchmark-enable`` each benchmark runs once (a smoke test). No
test asserts anything about time; ``latentreason bench --sections decoders``
reports the ratios.
"""

from __future__ import annotations

import pytest

from latentreason.assembly.prepare import prepare
from latentreason.bench.decoders import DECODERS, decoder_overhead, decoder_targets, format_decoders
from latentreason.bench.measure import answer_forced
from latentreason.bench.settings import DECODER_TARGET, BenchSettings, bench_config

pytestmark = pytest.mark.plugins  # compress and soft-thinking are the lightthinker plugin's


@pytest.mark.parametrize("name", list(DECODERS))
def test_answer_with_each_decoder(benchmark, bench_runtime, scale, name):
    settings = BenchSettings(llm=bench_runtime.models.llm, assistant=bench_runtime.models.assistant, limit=2)
    decoder = DECODERS[name]
    overrides = {"decoder": decoder} if decoder is not None else {}
    config = bench_config(settings, "cot", max_new_tokens=scale.max_new_tokens, overrides=overrides)
    prepared = prepare(config, runtime=bench_runtime)
    predictions = benchmark.pedantic(
        lambda: answer_forced(prepared.pipeline, prepared.examples)[0], rounds=scale.rounds, warmup_rounds=1
    )
    assert [p.new_tokens for p in predictions] == [scale.max_new_tokens] * 2  # every chain exactly as long


def test_the_decoders_section_compares_every_decoder_on_the_same_tokens(tiny_dirs):
    llm, assistant = tiny_dirs
    settings = BenchSettings(llm=llm, assistant=assistant, batch_size=2, decoder_limit=3, decoder_max_new_tokens=6)
    report = decoder_overhead(settings)
    rows = report["decoders"]
    assert list(rows) == list(DECODERS)
    assert all(row["new_tokens"] == 3 * 6 for row in rows.values())
    assert rows["none"]["vs_none"] == 1.0
    for row in rows.values():
        assert row["vs_none"] == pytest.approx(row["tokens_per_s"] / rows["none"]["tokens_per_s"])
    targets = decoder_targets(report)
    assert [t["name"] for t in targets] == [
        "decoder tokens/s, compress / none",
        "decoder tokens/s, soft-thinking / none",
    ]
    assert all(t["met"] == (t["value"] >= DECODER_TARGET) for t in targets)
    table = "\n".join(format_decoders(report))
    assert "| compress |" in table and "exactly 6 new tokens" in table
