"""Experiment files (`latentreason compare`) and checkpoints that each hold some components."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from latentreason.assembly.prepare import prepare
from latentreason.cli import main
from latentreason.config import load_config
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.evaluation.experiment import load_experiment
from latentreason.storage import save_weights, stored_components

DECODER = {"name": "compress", "options": {"pooling": "attention", "segment": "tokens", "tokens": 3}}


def _models(tiny_dirs) -> dict:
    llm, assistant = tiny_dirs
    return {"llm": llm, "assistant": assistant, "device": "cpu"}


def _write(path, tree) -> str:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return str(path)


def _experiment(tiny_dirs, tmp_path, checkpoint: str | None = None) -> dict:
    methods = {
        "cot": {"producer": "cot"},
        "window-8": {"producer": "cot", "decoder": {"name": "window", "options": {"keep": 8}}},
        "softcot+compress": {"producer": {"name": "softcot", "options": {"n_thoughts": 2}}, "decoder": DECODER},
    }
    if checkpoint:
        methods["compress-trained"] = {"producer": "cot", "decoder": DECODER, "checkpoint": checkpoint}
    return {
        "base": {
            "models": _models(tiny_dirs),
            "data": {"limit": 3},
            "generation": {"max_new_tokens": 6, "batch_size": 2},
        },
        "tasks": ["gsm8k"],
        "output": str(tmp_path / "out"),
        "methods": methods,
    }


def _save_compressor(runtime, path) -> str:
    """A checkpoint holding the compressor of ``DECODER`` only (as its training would write)."""
    pipeline = prepare(
        load_config(overrides={"producer": {"name": "cot"}, "decoder": DECODER}), runtime=runtime
    ).pipeline
    return str(save_weights(path, pipeline.trainable(), {}))


def test_compare_runs_every_named_method_and_prints_one_table(tiny_dirs, runtime, tmp_path):
    weights = _save_compressor(runtime, tmp_path / "compressor.safetensors")
    path = _write(tmp_path / "exp.yaml", _experiment(tiny_dirs, tmp_path, str(weights)))

    result = CliRunner().invoke(main, ["compare", path, "--quiet"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    for label in ("cot", "window-8", "softcot+compress", "compress-trained"):
        assert f"| gsm8k | {label} | 3 |" in result.output
        assert (tmp_path / "out" / f"gsm8k-{label}-seed0" / "samples.jsonl").exists()
    assert "wall s" in result.output and "peak KV tokens" in result.output
    lines = list(csv.DictReader((tmp_path / "out" / "comparison.csv").open()))
    assert [line["producer"] for line in lines] == ["cot", "window-8", "softcot+compress", "compress-trained"]
    stored = yaml.safe_load((tmp_path / "out" / "gsm8k-compress-trained-seed0" / "config.yaml").read_text())
    assert stored["label"] == "compress-trained" and stored["checkpoint"] == str(weights)

    # one method again, with two references: the table still holds every finished cell of the file
    spec = yaml.safe_load(Path(path).read_text()) | {"reference": ["cot", "window-8"]}
    path = _write(tmp_path / "exp.yaml", spec)
    only = CliRunner().invoke(
        main, ["compare", path, "--only", "cot", "--set", "data.limit=2", "--quiet"], catch_exceptions=False
    )
    assert only.exit_code == 0, only.output
    assert "| gsm8k | cot | 2 |" in only.output and "| gsm8k | window-8 | 3 |" in only.output
    head = next(line for line in only.output.splitlines() if "| task |" in line)
    assert "Δ flexible vs cot [95% CI]" in head and "McNemar p vs window-8 (b/c)" in head
    lines = list(csv.DictReader((tmp_path / "out" / "comparison.csv").open()))
    assert [(line["producer"], line["reference"]) for line in lines[:4]] == [
        ("cot", "cot"),
        ("cot", "window-8"),
        ("window-8", "cot"),
        ("window-8", "window-8"),
    ]
    assert lines[2]["flexible_diff"] != "" and lines[3]["flexible_diff"] == ""
    assert json.loads((tmp_path / "out" / "comparison.json").read_text()) == {"reference": ["cot", "window-8"]}


def test_a_cells_progress_bar_names_its_method(runtime, tmp_path, capsys):
    from latentreason.evaluation.runner import evaluate

    config = load_config(
        overrides={"producer": {"name": "cot"}, "label": "cot-lora", "generation": {"max_new_tokens": 2}}
    )
    pipeline = prepare(config, runtime=runtime).pipeline

    evaluate(pipeline, pipeline.task.load(limit=1), tmp_path, progress=True)

    assert "gsm8k/cot-lora: 100%" in capsys.readouterr().err


def test_every_problem_of_an_experiment_is_reported_at_once(tiny_dirs, tmp_path):
    spec = _experiment(tiny_dirs, tmp_path)
    spec["methods"]["typo"] = {"producer": "sofcot"}
    spec["methods"]["bad-tokens"] = {"producer": "cot", "generation": {"max_new_tokens": "lots"}}
    spec["methods"]["bad-decoder"] = {"producer": "cot", "decoder": {"name": "compress", "options": {"pooling": "max"}}}
    spec["methods"]["no-trigger"] = {
        "producer": "cot",
        "decoder": {
            "name": "reinject",
            "options": {"segment": "classifier", "trigger": str(tmp_path / "missing.safetensors")},
        },
    }
    path = _write(tmp_path / "exp.yaml", spec)

    result = CliRunner().invoke(main, ["compare", path], catch_exceptions=False)

    assert result.exit_code == 2
    assert "Did you mean 'softcot'" in result.output
    assert "methods.bad-tokens: generation.max_new_tokens" in result.output
    assert "bad-decoder" in result.output and "pooling" in result.output
    assert "no-trigger" in result.output and "missing.safetensors' does not exist" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing ran
    checked = CliRunner().invoke(main, ["validate", path], catch_exceptions=False)
    assert checked.exit_code == 2 and checked.output == result.output  # validate reports what compare would
    del spec["methods"]["typo"], spec["methods"]["bad-tokens"], spec["methods"]["bad-decoder"]
    del spec["methods"]["no-trigger"]
    checked = CliRunner().invoke(main, ["validate", _write(tmp_path / "good.yaml", spec)], catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("ok: experiment, 3 methods (cot, window-8, softcot+compress), tasks gsm8k")


def test_experiment_file_errors(tiny_dirs, tmp_path):
    with pytest.raises(ConfigError, match="methods"):
        load_experiment(_write(tmp_path / "a.yaml", {"base": {}, "methods": {}}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_experiment(_write(tmp_path / "b.yaml", {"methods": {"cot": {"producer": "cot"}}, "method": {}}))
    with pytest.raises(LatentReasonError, match="it defines: cot"):
        load_experiment(_write(tmp_path / "c.yaml", {"methods": {"cot": {"producer": "cot"}}}), only=["cto"])
    spec = _experiment(tiny_dirs, tmp_path, checkpoint=str(tmp_path / "not-trained-yet.safetensors"))
    with pytest.raises(
        ConfigError, match="methods.compress-trained: checkpoint .*not-trained-yet.safetensors' does not exist"
    ):
        load_experiment(_write(tmp_path / "e.yaml", spec))
    from latentreason.assembly.registry import Registry
    from latentreason.evaluation.comparison import methods_from_names, plan_comparison

    base = load_config(overrides={"models": _models(tiny_dirs)})
    methods = methods_from_names(base, ["cot", "softcot"], {"softcot": str(tmp_path / "none.safetensors")}, Registry())
    with pytest.raises(ConfigError, match="softcot: checkpoint .*none.safetensors' does not exist"):
        plan_comparison(methods, ["gsm8k"], [0], Registry())


def test_a_save_from_the_middle_of_a_training_is_refused_by_compare(tiny_dirs, runtime, tmp_path):
    pipeline = prepare(
        load_config(overrides={"producer": {"name": "cot"}, "decoder": DECODER}), runtime=runtime
    ).pipeline
    middle = save_weights(tmp_path / "middle.safetensors", pipeline.trainable(), {"step": 100, "total_steps": 250})
    final = save_weights(tmp_path / "final.safetensors", pipeline.trainable(), {"step": 250, "total_steps": 250})
    with pytest.raises(
        ConfigError,
        match=r"compress-trained: checkpoint .*middle.safetensors' is a save from the "
        r"middle of its training \(step 100 of 250\)",
    ):
        load_experiment(_write(tmp_path / "a.yaml", _experiment(tiny_dirs, tmp_path, str(middle))))
    load_experiment(_write(tmp_path / "b.yaml", _experiment(tiny_dirs, tmp_path, str(final))))


def test_a_results_folder_is_not_resumed_with_other_weights(runtime, tmp_path):
    from latentreason.evaluation.runner import evaluate

    config = load_config(
        overrides={"producer": {"name": "cot"}, "decoder": DECODER, "generation": {"max_new_tokens": 3}}
    )
    source = prepare(config, runtime=runtime).pipeline
    path = _save_compressor(runtime, tmp_path / "compressor.safetensors")
    trained = config.model_copy(update={"checkpoint": path})
    examples = source.task.load(limit=2)
    evaluate(prepare(trained, runtime=runtime).pipeline, examples[:1], tmp_path / "cell", progress=False)
    stored = json.loads((tmp_path / "cell" / "weights.json").read_text())["sha256"]
    assert [name for name, _ in stored] == ["compressor.safetensors"]

    evaluate(prepare(trained, runtime=runtime).pipeline, examples, tmp_path / "cell", progress=False)  # same bytes
    for module in source.trainable().values():  # "trained again" under the same path
        for p in module.parameters():
            p.data.add_(1.0)
    save_weights(path, source.trainable(), {})
    with pytest.raises(LatentReasonError, match="answered with other weights"):
        evaluate(prepare(trained, runtime=runtime).pipeline, examples, tmp_path / "cell", progress=False)


def test_each_checkpoint_may_hold_some_components(runtime, tmp_path):
    config = load_config(overrides={"producer": {"name": "softcot", "options": {"n_thoughts": 2}}, "decoder": DECODER})
    source = prepare(config, runtime=runtime).pipeline
    for module in source.trainable().values():
        for p in module.parameters():
            torch.nn.init.normal_(p)
    projector = save_weights(tmp_path / "projector.safetensors", {"projector": source.projector}, {})
    decoder = save_weights(tmp_path / "decoder.safetensors", {"decoder": source.decoder.trainable()}, {})
    assert stored_components(decoder) == {"decoder"}

    only_decoder = prepare(config.model_copy(update={"checkpoint": str(decoder)}), runtime=runtime).pipeline
    assert only_decoder.untrained == ["projector"] and only_decoder.checkpoints == [str(decoder)]
    assert torch.equal(only_decoder.decoder.trainable().queries, source.decoder.trainable().queries)

    both = prepare(config.model_copy(update={"checkpoint": [str(projector), str(decoder)]}), runtime=runtime).pipeline
    assert both.untrained == []
    assert torch.equal(both.projector.linear.weight, source.projector.linear.weight)

    with pytest.raises(LatentReasonError, match="holds decoder, which this run does not train or which an earlier"):
        prepare(config.model_copy(update={"checkpoint": [str(decoder), str(decoder)]}), runtime=runtime).pipeline
    cot = load_config(overrides={"producer": {"name": "cot"}, "decoder": DECODER, "checkpoint": str(projector)})
    with pytest.raises(LatentReasonError, match="holds projector"):
        prepare(cot, runtime=runtime).pipeline


def test_a_run_warns_about_untrained_components(tiny_dirs, tmp_path):
    llm, assistant = tiny_dirs
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--producer",
            "cot",
            "--task",
            "gsm8k",
            "--limit",
            "1",
            "--max-new-tokens",
            "3",
            "--quiet",
            "--set",
            "decoder.name=compress",
            "--set",
            "decoder.options.pooling=attention",
            "--output",
            str(tmp_path / "r"),
            "--llm",
            llm,
            "--assistant",
            assistant,
            "--device",
            "cpu",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "untrained (randomly initialised) decoder" in result.output
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["method"] == "cot+compress"


EXPERIMENTS = Path(__file__).parents[2] / "experiments"


@pytest.mark.parametrize("name", sorted(path.name for path in EXPERIMENTS.glob("*.yaml")))
def test_the_shipped_experiment_files_are_valid(name, monkeypatch):
    monkeypatch.setenv("LATENTREASON_VLLM_PYTHON", sys.executable)  # the files are checked, not a vLLM install
    monkeypatch.chdir(EXPERIMENTS.parent)  # their paths are relative to the clone
    path = EXPERIMENTS / name
    try:
        experiment = load_experiment(path)
    except ConfigError as exc:  # in a fresh clone the trained parts of runs/ do not exist yet
        assert all("does not exist" in p for p in exc.problems), exc.problems
    else:
        assert experiment.tasks == ["gsm8k"]
    spec = yaml.safe_load(path.read_text())
    needs_no_files = [
        label
        for label, fields in spec["methods"].items()
        if "checkpoint" not in fields and "trigger" not in str(fields)
    ]
    if needs_no_files:  # a file whose every method is trained has none to check without its files
        assert [m.label for m in load_experiment(path, only=needs_no_files).methods] == needs_no_files


def test_a_method_with_its_own_seeds_runs_one_checkpoint_per_seed(tiny_dirs, runtime, tmp_path):
    _save_compressor(runtime, tmp_path / "compress-s0.safetensors")
    spec = _experiment(tiny_dirs, tmp_path)
    spec["methods"] = {
        "cot": {"producer": "cot"},
        "compress-trained": {
            "producer": "cot",
            "decoder": DECODER,
            "seeds": [0, 1],
            "checkpoint": str(tmp_path / "compress-s{seed}.safetensors"),
        },
    }
    path = _write(tmp_path / "exp.yaml", spec)

    with pytest.raises(ConfigError, match=r"compress-trained: checkpoint '.*compress-s1\.safetensors' does not exist"):
        load_experiment(path)
    with pytest.raises(ConfigError, match=r"--seeds: no method named runs seed 1 \(seeds: 0\)"):
        load_experiment(path, only=["cot"], only_seeds=[1])
    # seed 1 is not trained yet: its seed 0 runs, and the table says one seed
    first = CliRunner().invoke(main, ["compare", path, "--seeds", "0", "--quiet"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "| gsm8k | compress-trained | 3 | 1 |" in first.output
    bad = CliRunner().invoke(main, ["compare", path, "--seeds", "0,one,--1,²"])
    assert bad.exit_code == 2 and "comma-separated integers, got 'one', '--1', '²'" in bad.output
    _save_compressor(runtime, tmp_path / "compress-s1.safetensors")
    experiment = load_experiment(path)
    assert experiment.table == {"cot": [0], "compress-trained": [0, 1]}
    assert [m.seeds_in(experiment.seeds) for m in load_experiment(path, only_seeds=[1]).methods] == [[1]]

    result = CliRunner().invoke(main, ["compare", path, "--quiet"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "| gsm8k | cot | 3 | 1 |" in result.output and "| gsm8k | compress-trained | 3 | 2 |" in result.output
    for seed in (0, 1):
        stored = yaml.safe_load((tmp_path / "out" / f"gsm8k-compress-trained-seed{seed}" / "config.yaml").read_text())
        assert stored["seed"] == seed and stored["checkpoint"] == str(tmp_path / f"compress-s{seed}.safetensors")
    assert not (tmp_path / "out" / "gsm8k-cot-seed1").exists()

    spec["methods"]["cot"]["seeds"] = "all"
    with pytest.raises(ConfigError, match="methods.cot.seeds: a non-empty list of integers"):
        load_experiment(_write(tmp_path / "exp.yaml", spec))


def test_a_study_records_its_dtype_and_refuses_to_resume_a_cell_in_another(tiny_dirs, tmp_path):
    spec = _experiment(tiny_dirs, tmp_path)
    spec["base"]["data"]["limit"] = 1
    spec["base"]["models"]["dtype"] = "float32"  # a study pins its dtype
    spec["methods"] = {"cot": {"producer": "cot"}}
    path = _write(tmp_path / "exp.yaml", spec)
    first = CliRunner().invoke(main, ["compare", path, "--quiet"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    cell = tmp_path / "out" / "gsm8k-cot-seed0"
    assert json.loads((cell / "summary.json").read_text())["dtype"] == "float32"

    again = CliRunner().invoke(main, ["compare", path, "--quiet", "--set", "models.dtype=bfloat16"])
    assert again.exit_code == 2
    assert f"{str(cell)!r} was started in float32 and this run computes in bfloat16" in again.output
    assert "--dtype float32" in again.output
