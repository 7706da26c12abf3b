"""Self-distilled training targets on tiny models: `distill` writes, resumes and keeps only correct chains; `train` uses them.

A tiny random model never writes a boxed GSM8K answer, so these tests score
with a test-only evaluator it can satisfy (the gold answer occurs in the
chain) and give the problems answers picked from what the model writes: two
that its greedy chains contain, three single letters its greedy chains lack
(sampling finds them), and one it never writes.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from latentreason import api, hookimpl
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.cli import main
from latentreason.components.evaluator import Evaluator, Score
from latentreason.components.example import Example
from latentreason.components.prompting import end_of_turn_id
from latentreason.config import load_config
from latentreason.errors import LatentReasonError
from latentreason.models.runtime import Runtime
from latentreason.storage import file_digest, read_meta
from latentreason.testing import save_tiny_model
from latentreason.training.distill import Sampling, passes_folder
from latentreason.training.targets import TargetsFile
from latentreason.training.trainer import Trainer, batch_loss, gold_targets, supervised_loss

NEVER = "@never@"


class Contains(Evaluator):
    """Test-only: a chain is correct when the gold answer occurs in it."""

    def score(self, generation: str, example: Example) -> Score:
        found = example.answer if example.answer in generation else None
        return Score(found, found, found is not None, found is not None)


class _Plugin:
    @hookimpl
    def latentreason_evaluators(self):
        return {"contains": Contains}


def _rows(answers: list[str]) -> str:
    gsm8k = Path(__file__).parents[3] / "latentreason/builtins/data/gsm8k/train.jsonl"
    rows = [json.loads(line) for line in gsm8k.read_text().splitlines()[: len(answers)]]
    return "".join(json.dumps(row | {"answer": answer}) + "\n" for row, answer in zip(rows, answers))


def _config(llm: str, data: Path, **overrides):
    return load_config(
        overrides={
            "producer": {"name": "question"},
            "evaluator": {"name": "contains"},
            "models": {"llm": llm, "device": "cpu", "dtype": "float32"},
            "data": {"task": "gsm8k", "source": str(data)},
            "generation": {"max_new_tokens": 24},
            **overrides,
        }
    )


@pytest.fixture(scope="module")
def distilled(tiny_dirs, core_plugin, tmp_path_factory):
    """``(config, registry, report, greedy chains)``: six training problems distilled with 8 tries each."""
    root = tmp_path_factory.mktemp("distill")
    registry = Registry([core_plugin, _Plugin()], entry_points=False)  # the in-test producers (tests/conftest.py)
    data = root / "train.jsonl"
    data.write_text(_rows(["x"] * 6))
    config = _config(tiny_dirs[0], data)
    first = api.run(
        config.model_copy(update={"data": config.data.model_copy(update={"split": "train"})}),
        output=root / "look",
        registry=registry,
        progress=False,
    )
    assert first.n == 6
    greedy = [json.loads(line)["generation"] for line in (root / "look/samples.jsonl").read_text().splitlines()]
    letters = "eaostnrlidhcmpuybgkwfvjxqz"
    answers = [re.search(r"[a-z]{3}", g).group() for g in greedy[:2]]  # in the greedy chain
    answers += [next(c for c in letters if c not in g) for g in greedy[2:5]]  # not in it; sampling finds them
    data.write_text(_rows([*answers, NEVER]))
    report = api.distill(config, root / "targets.jsonl", Sampling(8, 1.5, 1.0), registry=registry, progress=False)
    return config, registry, report, greedy


def test_distill_keeps_only_correct_chains_and_writes_their_provenance(distilled, tiny_dirs):
    _, _, report, greedy = distilled
    targets = TargetsFile.read(report.path)
    rows = list(targets.rows.values())
    assert [r["from"] for r in rows[:2]] == ["greedy", "greedy"]
    assert [r["target"] for r in rows[:2]] == greedy[:2]
    sampled = [r for r in rows if r["from"] == "sample"]
    assert sampled and all(1 <= r["try"] <= 8 for r in sampled)
    assert all(r["answer"] in r["target"] for r in rows)  # every kept chain is correct
    assert NEVER not in {r["answer"] for r in rows} and "gsm8k-train-5" not in targets.rows
    records = {r["id"]: r for r in map(json.loads, (report.passes / "sampled/samples.jsonl").read_text().splitlines())}
    assert set(records) == {f"gsm8k-train-{n}" for n in range(2, 6)}  # the greedy-wrong problems only
    for r in sampled:  # the first correct of its tries
        tries = records[r["id"]]["samples"]
        assert tries[r["try"] - 1] == r["target"]
        assert all(r["answer"] not in t for t in tries[: r["try"] - 1])
    made = targets.provenance
    llm = Path(tiny_dirs[0]).resolve()
    assert made["llm"] == str(llm) and made["llm_config_sha256"] == file_digest(llm / "config.json")
    assert made["instruction"].startswith("Solve the grade-school math word problem.")
    assert made["prompt_style"] == "default" and made["producer"] == {"name": "question", "options": {}}
    assert made["generation"]["sampled"] == {"tries": 8, "temperature": 1.5, "top_p": 1.0}
    assert made["seed"] == 0 and made["data"]["split"] == "train"
    assert datetime.fromisoformat(made["date"]).tzinfo is not None
    assert made["counts"] == {
        "problems": 6,
        "greedy_correct": 2,
        "sampled_correct": len(sampled),
        "kept": 2 + len(sampled),
        "sampled_chains": 32,
    }


def test_an_interrupted_distillation_resumes_where_it_stopped(distilled, tmp_path):
    config, registry, report, _ = distilled
    out = tmp_path / "targets.jsonl"
    shutil.copytree(report.passes, passes_folder(out))
    sampled = passes_folder(out) / "sampled/samples.jsonl"
    lines = sampled.read_text().splitlines(keepends=True)
    sampled.write_text(lines[0] + lines[1][:20])  # one problem done, one torn by the crash, two not started
    greedy = (passes_folder(out) / "greedy/samples.jsonl").read_text()
    again = api.distill(config, out, Sampling(8, 1.5, 1.0), registry=registry, progress=False)
    assert (passes_folder(out) / "greedy/samples.jsonl").read_text() == greedy  # nothing greedy redone
    redone = sampled.read_text().splitlines(keepends=True)
    assert len(redone) == 4 and redone[0] == lines[0]  # the finished problem kept, the rest answered
    assert again.provenance["counts"]["problems"] == 6
    first = TargetsFile.read(report.path).rows
    assert {i: r for i, r in TargetsFile.read(out).rows.items() if r["from"] == "greedy"} == {
        i: r for i, r in first.items() if r["from"] == "greedy"
    }


def _train_config(tiny_dirs, data: Path, targets: Path | None, **overrides):
    llm, assistant = tiny_dirs
    return load_config(
        overrides={
            "producer": {"name": "states"},
            "projector": {"name": "latent-map", "options": {"kind": "mlp", "hidden": 32}},
            "models": {"llm": llm, "assistant": assistant, "device": "cpu", "dtype": "float32"},
            "data": {"task": "gsm8k", "source": str(data)},
            "train": {
                "targets": str(targets) if targets else None,
                "limit": 5,
                "val_limit": 1,
                "batch_size": 2,
                "max_target_tokens": 32,
            },
            "audit": {"after_training": False},
            **overrides,
        }
    )


def test_train_supervises_the_training_rows_with_their_distilled_chains(distilled, tiny_dirs, tmp_path):
    config, registry, report, _ = distilled
    data = Path(config.data.source)
    train = _train_config(tiny_dirs, data, report.path)
    train.train.checkpoint_dir = str(tmp_path / "ckpt")
    result = api.train(train, registry=registry, progress=False)
    kept = len(TargetsFile.read(report.path).rows) - 1  # row 0 validates; row 5 has no chain
    assert result.targets is not None and (result.targets.kept, result.targets.skipped) == (kept, 1)
    assert "1 without one skipped; validation on the gold" in result.targets.text()
    assert read_meta(result.weights)["targets"] == file_digest(report.path)
    assert len(result.validation) == 1 and len(result.history) == -(-kept // 2)


def test_the_distilled_chains_reach_the_loss_and_validation_stays_gold(distilled, tiny_dirs):
    config, registry, report, _ = distilled
    train = _train_config(tiny_dirs, Path(config.data.source), report.path)
    pipeline = prepare(train, registry, log=None).pipeline
    targets = TargetsFile.read(report.path)
    examples = pipeline.task.load("train", train.data.source)
    validation, rows = examples[:1], [ex for ex in examples[1:] if ex.id in targets.rows]
    trainer = Trainer(pipeline, rows, validation, train.train, "unused", progress=False, distilled=targets)
    tokenizer = pipeline.runtime.llm.tokenizer
    gold = gold_targets(pipeline, rows + validation, 32)
    for ex in rows:
        ids = tokenizer(targets.rows[ex.id]["target"], add_special_tokens=False)["input_ids"]
        assert trainer.targets[ex.id] == ([*ids, end_of_turn_id(tokenizer)] if len(ids) < 32 else ids[:32])
        assert trainer.targets[ex.id] != gold[ex.id]
    assert trainer.targets[validation[0].id] == gold[validation[0].id]
    with torch.no_grad():
        loss = batch_loss(pipeline, trainer.world, rows[:2], trainer.targets, 2)
        own = supervised_loss(pipeline, rows[:2], [trainer.targets[e.id] for e in rows[:2]])
        from_gold = supervised_loss(pipeline, rows[:2], [gold[e.id] for e in rows[:2]])
    assert loss.item() == pytest.approx(own.item()) and loss.item() != pytest.approx(from_gold.item())


def _refused(registry: Registry, config, match: str) -> None:
    """``api.train`` refuses ``config`` with ``match``, before any model loads (loading one would fail the test)."""

    def no_loading(spec):
        raise AssertionError(f"{spec.name} loaded before the targets were checked")

    with pytest.raises(LatentReasonError, match=match):
        api.train(config, registry=registry, progress=False, runtime=Runtime(config.models, no_loading))


def test_bad_targets_get_one_clear_error_each_before_any_model_loads(distilled, tiny_dirs, tmp_path):
    config, registry, report, _ = distilled
    data = Path(config.data.source)
    _refused(
        registry,
        _train_config(tiny_dirs, data, tmp_path / "nowhere.jsonl"),
        r"nowhere.jsonl' \(train.targets\) does not exist; make one with `latentreason distill`",
    )
    _refused(
        registry,
        _train_config(tiny_dirs, data, data),
        "is not a targets file of this version: its first line must be the header",
    )
    other = save_tiny_model(tmp_path / "other-llm", "qwen2", hidden=64, seed=3)
    another_llm = _train_config(tiny_dirs, data, report.path)
    another_llm.models.llm = str(other)
    _refused(
        registry,
        another_llm,
        f"was made with the LLM '{Path(tiny_dirs[0]).resolve()}' .* this run trains '{other.resolve()}'",
    )
    another_prompt = _train_config(tiny_dirs, data, report.path, prompt_style="softcot")
    _refused(
        registry,
        another_prompt,
        r"made with another prompt than this run's \(prompt_style: 'default' there, 'softcot' here; instruction: ",
    )
    edited = tmp_path / "edited.jsonl"
    lines = report.path.read_text().splitlines(keepends=True)
    row = json.loads(lines[1])
    edited.write_text(lines[0] + json.dumps(row | {"question": "Another question?"}) + "\n" + "".join(lines[2:]))
    _refused(
        registry,
        _train_config(tiny_dirs, data, edited),
        rf"has 1 row\(s\) that are not gsm8k's training problems .*'{row['id']}' \(another question or answer\)",
    )


@pytest.mark.plugins  # the command line finds the installed plugins
def test_the_commands_distill_and_refuse_a_file_without_a_chain_for_the_training_rows(tiny_dirs, tmp_path):
    runner = CliRunner()
    models = ["--llm", tiny_dirs[0], "--assistant", tiny_dirs[1], "--device", "cpu", "--quiet"]
    out = tmp_path / "targets.jsonl"
    result = runner.invoke(
        main,
        [
            "distill",
            "--task",
            "gsm8k",
            "--limit",
            "2",
            "--max-new-tokens",
            "4",
            "--tries",
            "1",
            "--out",
            str(out),
            *models,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "problems: 2  correct greedy: 0  correct sampled: 0 (of 2 sampled chains)  kept: 0" in result.output
    assert TargetsFile.read(out).provenance["counts"]["problems"] == 2
    result = runner.invoke(main, ["distill", "--task", "gsm8k", "--split", "test", "--out", str(out), *models])
    assert result.exit_code == 2 and "'test' is gsm8k's evaluation split" in result.output
    result = runner.invoke(
        main,
        [
            "train",
            "--producer",
            "softcot",
            "--task",
            "gsm8k",
            "--train-limit",
            "2",
            "--set",
            f"train.targets={out}",
            *models,
        ],
    )
    assert result.exit_code == 2 and "None of the 2 training rows (from 'gsm8k-train-16') has a chain" in result.output
