"""A training process killed with SIGKILL resumes to the weights of an uninterrupted run (within 1e-6)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file

from latentreason.cli import main

STEPS = 6  # 3 examples, batch 1, 2 epochs: the resumed run crosses an epoch boundary


def _train_args(tiny_dirs, out) -> list[str]:
    llm, assistant = tiny_dirs
    return [
        "train",
        "--producer",
        "softcot",
        "--task",
        "gsm8k",
        "--llm",
        llm,
        "--assistant",
        assistant,
        "--device",
        "cpu",
        "--train-limit",
        "3",
        "--train-batch-size",
        "1",
        "--epochs",
        "2",
        "--lr",
        "0.01",
        "--n-thoughts",
        "2",
        "--set",
        "producer.options.n_thoughts_train=3",
        "--set",
        "train.save_every=1",
        "--set",
        "train.val_limit=2",
        "--set",
        "train.max_target_tokens=12",
        "--set",
        "train.warmup_steps=2",
        "--set",
        "audit.after_training=false",  # audited in tests/system/test_cli.py
        "--out",
        str(out),
        "--quiet",
    ]


def _saved_step(state) -> int:
    with safe_open(str(state), framework="pt") as f:
        return json.loads(f.metadata()["state"])["step"]


def test_training_killed_with_sigkill_resumes_to_the_same_weights(tiny_dirs, tmp_path):
    straight = CliRunner().invoke(main, _train_args(tiny_dirs, tmp_path / "straight"), catch_exceptions=False)
    assert straight.exit_code == 0, straight.output

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "latentreason.cli", *_train_args(tiny_dirs, out)]
    state = out / "state.safetensors"
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not state.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)  # kill -9: no handler runs, nothing is flushed
        assert process.wait() == -signal.SIGKILL, (tmp_path / "log.txt").read_text()
    killed_at = _saved_step(state)
    assert 1 <= killed_at < STEPS and not (out / "epoch-2.safetensors").exists()

    again = CliRunner().invoke(main, _train_args(tiny_dirs, out), catch_exceptions=False)  # the same command again
    assert again.exit_code == 0, again.output
    assert f"steps: {STEPS}" in again.output

    expected, resumed = load_file(tmp_path / "straight" / "last.safetensors"), load_file(out / "last.safetensors")
    assert expected.keys() == resumed.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=1e-6, msg=key)
    history = [json.loads((folder / "history.json").read_text())["train"] for folder in (tmp_path / "straight", out)]
    assert [h["step"] for h in history[1]] == list(range(1, STEPS + 1))
    assert [h["loss"] for h in history[1]] == pytest.approx([h["loss"] for h in history[0]], rel=1e-6)


def test_a_folder_written_before_a_setting_existed_resumes_at_its_default(tmp_path):
    import yaml

    from latentreason.config import RunConfig, dump_config
    from latentreason.errors import LatentReasonError
    from latentreason.evaluation.results import ResultsFolder

    config = RunConfig()
    tree = yaml.safe_load(dump_config(config))
    del tree["generation"]["engine"]  # written by a version without this setting
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tree))
    (tmp_path / "samples.jsonl").write_text('{"id": "a"}\n')
    ResultsFolder(tmp_path, config)  # the default engine: the same run
    with pytest.raises(LatentReasonError, match="other settings \\(generation.engine\\)"):
        ResultsFolder(
            tmp_path, config.model_copy(update={"generation": config.generation.model_copy(update={"engine": "vllm"})})
        )


def test_a_finished_run_run_again_keeps_its_results_and_its_peak_memory(runtime, tmp_path):
    from latentreason.api import build_pipeline
    from latentreason.config import load_config
    from latentreason.evaluation.runner import evaluate

    config = load_config(
        overrides={"producer": {"name": "cot"}, "data": {"task": "gsm8k"}, "generation": {"max_new_tokens": 3}}
    )
    pipeline = build_pipeline(config, runtime=runtime)
    examples = pipeline.task.load(limit=3)
    first = evaluate(pipeline, examples, tmp_path, progress=False)
    for peak in (123.0, 1e-9):  # as measured by the sitting that did the work, above or below this sitting's
        stored = json.loads((tmp_path / "summary.json").read_text())
        stored["peak_memory_gib"] = peak
        (tmp_path / "summary.json").write_text(json.dumps(stored))

        again = evaluate(pipeline, examples, tmp_path, progress=False)

        assert (again.n, again.flexible_acc, again.examples_per_s) == (
            first.n,
            first.flexible_acc,
            first.examples_per_s,
        )
        assert again.peak_memory_gib == peak


def test_a_cell_read_back_holds_only_its_runs_examples(runtime, tmp_path):
    from latentreason.api import build_pipeline
    from latentreason.config import load_config
    from latentreason.evaluation.runner import evaluate
    from latentreason.evaluation.tables import read_cell

    config = load_config(
        overrides={"producer": {"name": "cot"}, "data": {"task": "gsm8k"}, "generation": {"max_new_tokens": 3}}
    )
    pipeline = build_pipeline(config, runtime=runtime)
    examples = pipeline.task.load(limit=4)
    evaluate(pipeline, examples, tmp_path, progress=False)
    evaluate(pipeline, examples[1:3], tmp_path, progress=False)  # a later run with another limit and offset

    cell = read_cell(tmp_path)
    assert [r["id"] for r in cell.records] == [ex.id for ex in examples[1:3]]
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 4  # nothing is lost
