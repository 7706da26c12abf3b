"""The latent-prefix section: CODI's text after its latent prefix, engine against engine, on tiny models.

vLLM's CPU kernels cannot run the tiny models' 16-wide heads, so here only the
transformers engine runs (as with ``--quick``); ``tests/system/test_vllm_engine.py``
(slow) shows that vLLM writes the same greedy text after the same prefix.
"""

from __future__ import annotations

import pytest

from latentreason.bench.latent_prefix import format_latent_prefix, latent_prefix_engines, latent_prefix_targets
from latentreason.bench.settings import LATENT_PREFIX_TARGET, BenchSettings

pytestmark = pytest.mark.plugins  # codi is the baselines plugin's
pytest.importorskip("peft")


def test_the_latent_prefix_section_times_codi_on_the_transformers_engine(tiny_dirs):
    llm, assistant = tiny_dirs
    settings = BenchSettings(
        llm=llm, assistant=assistant, device="cpu", latent_limit=3, e2e_max_new_tokens=6, vllm=False
    )
    report = latent_prefix_engines(settings)
    assert list(report["engines"]) == ["transformers"]
    row = report["engines"]["transformers"]
    assert row["examples"] == 3 and row["answer_s"] > 0
    assert row["examples_per_s"] == pytest.approx(3 / row["answer_s"])
    assert latent_prefix_targets(report) == []  # no ratio without vLLM
    table = "\n".join(format_latent_prefix(report))
    assert "untrained adapter and step map" in table and "vLLM not measured" in table


def test_the_latent_prefix_target_is_vllms_speed_up():
    vllm = {"examples_per_s": 1.2, "speedup": 4.0, "identical_text": 7, "examples": 8, "load_s": 90.0}
    report = {
        "problems": 8,
        "max_new_tokens": 320,
        "checkpoint": "codi/last.safetensors",
        "engines": {"transformers": {"load_s": 5.0, "examples_per_s": 0.3, "tokens_per_s": 9.0, "truncated": 0}}
        | {"vllm": vllm | {"tokens_per_s": 36.0, "truncated": 0}},
    }
    [target] = latent_prefix_targets(report)
    assert target["value"] == 4.0 and target["met"] == (LATENT_PREFIX_TARGET <= 4.0)
    table = "\n".join(format_latent_prefix(report))
    assert "| vllm | 90 | 1.200 | 36.0 | 0 | 4.00x | 7/8 |" in table
    assert "checkpoint codi/last.safetensors" in table


def test_a_second_engine_decodes_after_the_first_ones_untrained_prefix(tiny_dirs, monkeypatch):
    # vLLM cannot run the tiny models: a second transformers run (batch 1) stands in for it; the untrained
    # adapter and step map start from the seed alone, so both engines decode after the same prefix
    from latentreason.bench import latent_prefix

    second = {"engine": "transformers", "continuous_batching": True, "batch_size": 1}
    monkeypatch.setattr(
        latent_prefix, "ENGINES", {"transformers": latent_prefix.ENGINES["transformers"], "vllm": second}
    )
    monkeypatch.setattr(latent_prefix, "vllm_available", lambda: True)
    llm, assistant = tiny_dirs
    settings = BenchSettings(llm=llm, assistant=assistant, device="cpu", latent_limit=3, e2e_max_new_tokens=6)
    report = latent_prefix_engines(settings)
    row = report["engines"]["vllm"]
    assert row["identical_text"] == 3 == row["examples"]
    assert row["speedup"] == pytest.approx(row["examples_per_s"] / report["engines"]["transformers"]["examples_per_s"])
