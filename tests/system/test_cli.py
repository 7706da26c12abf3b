"""The command line end to end on tiny models saved as local folders."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from latentreason.cli import main
from latentreason.evaluation.audit import read_audit


@pytest.fixture()
def cli(tiny_dirs):
    llm, assistant = tiny_dirs
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [*args], catch_exceptions=False)

    invoke.models = ["--llm", llm, "--assistant", assistant, "--device", "cpu"]
    return invoke


def test_run_writes_a_results_folder(cli, tmp_path):
    out = tmp_path / "res"
    result = cli(
        "run",
        "--producer",
        "cot",
        "--task",
        "gsm8k",
        "--limit",
        "3",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "5",
        "--output",
        str(out),
        "--quiet",
        *cli.models,
    )
    assert result.exit_code == 0, result.output
    assert "| gsm8k | cot | 3 |" in result.output
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 3
    assert set(records[0]) >= {
        "id",
        "question",
        "prompt",
        "generation",
        "strict",
        "flexible",
        "gold",
        "strict_correct",
        "flexible_correct",
        "new_tokens",
        "latency_s",
        "machine",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and 0 <= summary["strict_acc"] <= 1
    assert summary["machines"] == {records[0]["machine"]: 3} and records[0]["machine"] in result.output
    assert (out / "config.yaml").exists() and (out / "summary.md").exists()

    again = cli(
        "run",
        "--producer",
        "cot",
        "--task",
        "gsm8k",
        "--limit",
        "4",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "5",
        "--output",
        str(out),
        "--quiet",
        *cli.models,
    )
    assert again.exit_code == 0, again.output
    ids = [json.loads(line)["id"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(ids) == 4 == len(set(ids))  # the 3 finished examples were not recomputed


def test_quiet_shows_no_progress_bar_not_even_the_libraries_loading_bars(cli, tmp_path):
    from transformers.utils import logging as hf_logging

    args = ["run", "--producer", "cot", "--task", "gsm8k", "--limit", "1", "--max-new-tokens", "2", *cli.models]
    loud = cli(*args, "--output", str(tmp_path / "loud"))
    quiet = cli(*args, "--output", str(tmp_path / "quiet"), "--quiet")
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "Loading weights" in loud.output  # transformers' bar, as the models load
    assert "Loading weights" not in quiet.output and "it/s" not in quiet.output
    assert hf_logging.is_progress_bar_enabled()  # for the command only


def test_train_then_run_with_the_trained_projector(cli, tmp_path):
    ckpt = tmp_path / "ckpt"
    result = cli(
        "train",
        "--producer",
        "softcot",
        "--task",
        "gsm8k",
        "--train-limit",
        "4",
        "--train-batch-size",
        "2",
        "--out",
        str(ckpt),
        "--set",
        "train.val_limit=2",
        "--set",
        "train.max_target_tokens=16",
        "--n-thoughts",
        "2",
        "--set",
        "audit.limit=10",
        "--quiet",
        *cli.models,
    )
    assert result.exit_code == 0, result.output
    assert "validation loss" in result.output
    assert "started from: seeded initialization" in result.output
    weights = ckpt / "last.safetensors"
    assert weights.exists()
    # the audit of the trained thoughts on the 10 training rows after the 2 + 4 it read
    assert "thought audit (gsm8k/train rows 6-15, llm input): question-specific share" in result.output
    assert "probe accuracy (chance): $ " in result.output and f"full audit: {ckpt / 'audit.json'}" in result.output
    audit = read_audit(ckpt / "audit.json")
    assert audit.weights == [str(weights)] and [s.stage for s in audit.stages] == ["producer", "projected", "llm input"]

    def run_softcot(n_thoughts: str, limit: str, max_new_tokens: str, out: str):
        return cli(
            "run",
            "--producer",
            "softcot",
            "--task",
            "gsm8k",
            "--limit",
            limit,
            "--n-thoughts",
            n_thoughts,
            "--checkpoint",
            str(weights),
            "--max-new-tokens",
            max_new_tokens,
            "--output",
            str(tmp_path / out),
            "--quiet",
            *cli.models,
        )

    result = run_softcot("2", "2", "4", "r")
    assert result.exit_code == 0, result.output
    assert "untrained" not in result.output and "note:" not in result.output
    result = run_softcot("3", "1", "2", "r3")  # 3 thoughts with a projector trained with 2: said, not refused
    assert result.exit_code == 0, result.output
    assert "was trained with other producer options (n_thoughts: 2 there, 3 here)" in result.output


def test_loss_of_a_method_on_held_back_rows(cli):
    result = cli(
        "loss",
        "--producer",
        "cot",
        "--task",
        "gsm8k",
        "--split",
        "train",
        "--offset",
        "5",
        "--limit",
        "2",
        "--set",
        "train.max_target_tokens=8",
        *cli.models,
    )
    assert result.exit_code == 0, result.output
    assert "gsm8k/train, 2 examples from offset 5; weights: none" in result.output
    assert float(result.output.split("loss: ")[1].split()[0]) > 0


def test_thoughts_audits_soft_thoughts_on_held_back_training_questions(cli, tmp_path):
    def table(producer, *options):
        result = cli(
            "thoughts",
            "--producer",
            producer,
            "--task",
            "gsm8k",
            "--split",
            "train",
            "--offset",
            "300",
            "--limit",
            "10",
            "--out",
            str(tmp_path / f"{producer}.json"),
            *options,
            *cli.models,
        )
        assert result.exit_code == 0, result.output
        assert f"thoughts of {producer}, thoughts_from: own (gsm8k/train, 10 examples from offset 300" in result.output
        assert "attention over the first 32 new tokens" in result.output
        return {
            line.split(" | ")[0].strip("| "): [float(v) for v in line.strip(" |").split(" | ")[1:]]
            for line in result.output.splitlines()
            if line.startswith(("| producer", "| projected", "| llm input"))
        }

    softcot = table("softcot")  # the assistant reads each question
    assert set(softcot) == {"producer", "projected", "llm input"}
    share, cosine, rank, norm, ratio = softcot["producer"]
    assert 0 < share < 1 and cosine < 1 and rank > 1 and norm > 0 and ratio > 0
    assert softcot["llm input"] == pytest.approx(softcot["projected"], rel=1e-4)  # the injector writes them as they are
    audit = read_audit(tmp_path / "softcot.json")
    assert audit.rows() == "gsm8k/train rows 300-309" and set(audit.probes) == set(softcot)
    assert audit.final.specific_share == pytest.approx(softcot["llm input"][0], rel=1e-2)
    # the same vectors for every question (a placeholder whose tiny embedding is not the zero padding row)
    trained_prompt = table("pause-trained", "--set", "producer.options.placeholder_token=<|im_end|>")
    assert trained_prompt and all(v[:3] == pytest.approx([0.0, 1.0, 0.0], abs=1e-6) for v in trained_prompt.values())

    refused = [
        (["--producer", "cot", "--split", "train", "--limit", "10"], "Producer 'cot' makes no soft thoughts"),
        (["--producer", "softcot", "--limit", "10"], "never gsm8k's evaluation split 'test'"),
        (["--producer", "softcot", "--split", "train", "--limit", "9"], "needs at least 10 examples"),
    ]
    for args, message in refused:
        result = cli("thoughts", "--task", "gsm8k", *args, *cli.models)
        assert result.exit_code != 0 and message in result.output


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--producer", "sofcot"], "Unknown producer 'sofcot'. Did you mean 'softcot'?"),
        (["run", "--task", "gsm9k"], "Unknown task 'gsm9k'"),
        (["run", "--producer", "cot", "--llm", "./no/such/model"], "does not exist"),
        (["run", "--set", "generation.max_new_tokens=lots"], "generation.max_new_tokens"),
    ],
)
def test_bad_input_gives_one_clear_error_without_traceback(cli, args, expected):
    result = cli(*args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_malformed_yaml_and_validate(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("producer: {name: cot\n")
    result = cli("validate", str(bad))
    assert result.exit_code == 2 and "not valid YAML" in result.output
    good = tmp_path / "good.yaml"
    good.write_text("producer: {name: cot}\ndata: {task: aqua, limit: 2}\n")
    result = cli("validate", str(good))
    assert result.exit_code == 0 and "evaluator choice" in result.output


def test_projector_of_the_wrong_shape(cli, tmp_path):
    import torch

    from latentreason.storage import save_weights

    path = save_weights(
        tmp_path / "w.safetensors", {"projector": torch.nn.ModuleDict({"linear": torch.nn.Linear(7, 9)})}, {}
    )
    result = cli("run", "--producer", "softcot", "--limit", "1", "--checkpoint", str(path), *cli.models)
    assert result.exit_code == 2
    assert "projector.linear.weight has shape (9, 7) but this run needs (64, 48)" in result.output


def test_dataset_file_with_missing_fields(cli, tmp_path):
    data = tmp_path / "broken.jsonl"
    data.write_text('{"id": "a", "question": "1+1?"}\n')
    result = cli("run", "--producer", "cot", "--source", str(data), "--limit", "1", *cli.models)
    assert result.exit_code == 2
    assert "answer" in result.output and "line 1" in result.output


def test_listing_commands(cli):
    plugins = cli("plugins")
    assert plugins.exit_code == 0 and "softcot" in plugins.output and "latentreason_producers" in plugins.output
    tasks = cli("tasks")
    assert tasks.exit_code == 0 and "strategyqa" in tasks.output
    models = cli("models")
    assert models.exit_code == 0 and "qwen2.5-coder-0.5b-instruct" in models.output
    assert "Quick start" in cli("--help").output


def test_a_comparison_of_producers_tasks_and_seeds(cli, tmp_path):
    out = tmp_path / "cmp"
    result = cli(
        "run",
        "--producer",
        "cot,pause",
        "--task",
        "gsm8k,strategyqa",
        "--seeds",
        "0,1",
        "--limit",
        "2",
        "--max-new-tokens",
        "3",
        "--output",
        str(out),
        "--quiet",
        "--set",
        "generation.do_sample=true",
        *cli.models,
    )
    assert result.exit_code == 0, result.output
    table = (out / "comparison.md").read_text()
    lines = table.splitlines()
    assert sum(line.startswith("|") for line in lines) == 6  # header, rule, 4 rows
    assert "Δ flexible vs cot [95% CI]" in lines[0] and "McNemar p" in lines[0] and "truncated" in lines[0]
    assert sum(line.startswith("trivial baselines on ") for line in lines) == 2  # one per task
    assert any("were cut at" in line for line in lines)  # 3 tokens cut every chain
    assert "± " in table
    assert len((out / "comparison.csv").read_text().splitlines()) == 9  # header + 8 runs
    assert (out / "strategyqa-pause-seed1" / "samples.jsonl").exists()


def test_a_comparison_reports_every_problem_before_running(cli, tmp_path):
    result = cli(
        "run",
        "--producer",
        "cot,sofcot",
        "--task",
        "gsm8k,aqau",
        "--limit",
        "1",
        "--n-thoughts",
        "3",
        "--output",
        str(tmp_path / "x"),
        *cli.models,
    )
    assert result.exit_code == 2
    assert "Unknown producer 'sofcot'" in result.output
    assert not (tmp_path / "x").exists()


def test_report_renders_tables_and_plots(cli, tmp_path):
    out = tmp_path / "cmp"
    assert (
        cli(
            "run",
            "--producer",
            "cot,pause",
            "--task",
            "gsm8k",
            "--limit",
            "2",
            "--max-new-tokens",
            "3",
            "--output",
            str(out),
            "--quiet",
            *cli.models,
        ).exit_code
        == 0
    )
    result = cli("report", str(out))
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.html", "accuracy.png", "accuracy_vs_latency.png", "accuracy_vs_peak_kv.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "<td>pause</td>" in (out / "report.html").read_text()
    assert cli("report", str(tmp_path / "empty")).exit_code == 2
