"""``latentreason bench --quick`` end to end, and the bench helpers that need no timing."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from click.testing import CliRunner

from latentreason.bench.hardware import CpuShare, decode_bytes
from latentreason.bench.measure import token_agreement
from latentreason.cli import main


def test_bench_quick_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--quick",
            "--limit",
            "2",
            "--max-new-tokens",
            "3",
            "--batch-size",
            "2",
            "--train-steps",
            "1",
            "--output",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "| SoftCoT / CoT time per example (float32, batch 1) |" in result.output
    assert "| SoftCoT examples/s, batch 2 / batch 1 (bfloat16) |" in result.output
    assert "Where one batch-1 SoftCoT example goes" in result.output
    report = json.loads(out.read_text())
    assert {"settings", "machine", "float32", "bfloat16", "dtype_agreement", "targets"} <= set(report)
    fp32 = report["float32"]
    assert len(fp32["softcot_vs_cot"]["cot_s"]) == len(fp32["softcot_vs_cot"]["softcot_s"]) == 2
    assert fp32["profile"]["new_tokens"] == 3 and len(fp32["profile"]["tokens"]) <= 3
    assert fp32["training"]["steps"] == 1
    assert report["machine"]["bandwidth"]["read_gb_s"] > 0
    assert len(report["targets"]) == 5  # ratio, 3 batch ratios, int8 bound
    for t in report["targets"]:  # "met" is the measured value against the goal it prints
        sign, goal = t["target"].split()
        bound = float(goal.rstrip("%")) / (100 if goal.endswith("%") else 1)
        assert t["met"] == (t["value"] >= bound if sign == ">=" else t["value"] <= bound), t


def test_bench_refuses_a_single_token(tmp_path):
    result = CliRunner().invoke(
        main, ["bench", "--quick", "--max-new-tokens", "1", "--output", str(tmp_path / "b.json")]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "b.json").exists()


def test_decode_bytes_count_one_embedding_row_and_the_whole_head(tiny_llm):
    model = tiny_llm.model
    vocab, width = model.get_input_embeddings().weight.shape
    everything = sum(p.numel() for p in model.parameters()) * 4
    counted = decode_bytes(tiny_llm, context=10)
    assert not counted["tied"]
    assert counted["weight_bytes"] == everything - vocab * width * 4 + width * 4
    config = model.config
    head_dim = config.hidden_size // config.num_attention_heads
    assert counted["kv_bytes"] == 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 4 * 10


def test_token_agreement_finds_the_first_difference():
    def result(tokens, generations, answers):
        return {"profile": {"tokens": tokens}, "generations": generations, "answers": answers}

    same = token_agreement(result([1, 2, 3], ["a", "b"], ["1", None]), result([1, 2, 3], ["a", "c"], ["1", None]))
    assert same == {
        "n": 2,
        "identical": 1,
        "same_answers": 2,
        "first_example_tokens": 3,
        "first_example_first_difference": None,
    }
    assert (
        token_agreement(result([1, 2, 3], ["a"], ["1"]), result([1, 5, 3], ["x"], ["2"]))[
            "first_example_first_difference"
        ]
        == 1
    )
    assert (
        token_agreement(result([1, 2, 3], ["a"], ["1"]), result([1, 2], ["x"], ["2"]))["first_example_first_difference"]
        == 2
    )


def test_cpu_share_reports_a_share_of_the_cores():
    with CpuShare() as share:
        torch.ones(1000).sum()
    if share.others is None:
        pytest.skip("no /proc/stat here")
    assert share.others >= 0


def test_the_vllm_variant_is_measured_only_when_asked_for_and_set_up(monkeypatch, tmp_path):
    from latentreason.bench.end_to_end import BASELINE, variants
    from latentreason.bench.settings import BenchSettings
    from latentreason.models.vllm_env import PYTHON_ENV

    monkeypatch.setenv(PYTHON_ENV, sys.executable)  # an environment "is set up"
    assert set(variants(BenchSettings())) == {BASELINE, "fast", "vllm"}
    assert set(variants(BenchSettings(vllm=False))) == {BASELINE, "fast"}  # what --quick measures
    monkeypatch.setenv(PYTHON_ENV, str(tmp_path / "missing"))
    assert set(variants(BenchSettings())) == {BASELINE, "fast"}
