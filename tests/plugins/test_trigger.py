"""The trainable segment-boundary trigger: labels, training, files, decoding with it, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from latentreason.api import train_trigger
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.cli import main
from latentreason.components.prompting import end_of_turn_id
from latentreason.config import GenerationConfig, load_config
from latentreason.decoding.loop import decode
from latentreason.decoding.segments import Boundaries, SegmentOptions, boundary_labels, split_segments
from latentreason.decoding.trigger import BoundaryTrigger
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.models.runtime import Runtime
from latentreason.storage import read_meta
from latentreason.training.trigger import label_rule
from latentreason_lightthinker.reinject import Reinject, ReinjectOptions

NAMES = ["Natalia", "Weng", "Betty", "Sam", "Ann", "Tom"]


def _rows(n: int, offset: int, rationale: bool = True) -> list[dict]:
    """Small GSM8K-style rows whose rationales have three lines."""
    rows = []
    for i in range(n):
        a, b, who = 3 + i + offset, 5 + 2 * i, NAMES[(i + offset) % len(NAMES)]
        row = {
            "id": f"r{offset}-{i}",
            "question": f"{who} has {a} clips and buys {b} more. How many?",
            "answer": str(a + b),
        }
        if rationale:
            row["rationale"] = f"{who} has {a} clips.\nThen {who} buys {b} more.\nSo {a} + {b} = {a + b} in total."
        rows.append(row)
    return rows


@pytest.fixture()
def dataset(tmp_path):
    """A folder with train.jsonl (16 rows: 4 held back for validation, then 12) and test.jsonl (4 rows), for gsm8k."""
    folder = tmp_path / "data"
    folder.mkdir()
    for split, n, offset in (("train", 16, 0), ("test", 4, 50)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(n, offset)))
    return folder


def _config(dataset, **train):
    return load_config(
        overrides={
            "producer": {"name": "cot"},
            "data": {"task": "gsm8k", "source": str(dataset)},
            "train": {"limit": 12, "val_limit": 4, **train},
        }
    )


def _trigger_file(path, hidden: int, bias: float, threshold: float = 0.5):
    """A trigger that ignores the hidden state: probability sigmoid(bias) everywhere."""
    trigger = BoundaryTrigger(hidden)
    with torch.no_grad():
        trigger.linear.bias.fill_(bias)
    return trigger.save(
        path,
        threshold=threshold,
        label=label_rule("paragraph", 256).model_dump(exclude_none=True),
        llm="test",
        hidden_size=hidden,
    )


def test_labels_are_where_split_segments_ends_a_segment(tiny_llm):
    tok = tiny_llm.tokenizer
    task = Registry().get("task", "gsm8k")
    (example,) = task.load("train", limit=1)  # "Natalia sold 48/2 = 24 clips in May.\nNatalia sold ..."
    ids = tok(task.target_text(example), add_special_tokens=False)["input_ids"] + [end_of_turn_id(tok)]
    paragraph = boundary_labels(ids, tok, label_rule("paragraph", 256))
    # independently: a paragraph ends at each token after which the text ends with a line break
    assert [i for i, y in enumerate(paragraph) if y] == [
        i for i in range(len(ids)) if tok.decode(ids[: i + 1]).endswith("\n")
    ]
    assert sum(paragraph) == task.target_text(example).count("\n") == 2
    for options in (label_rule("sentence", 256), SegmentOptions(segment="sentence", min_tokens=6, tokens=12)):
        labels = boundary_labels(ids, tok, options)
        segments = split_segments(ids, tok, options)
        ends = [sum(len(s) for s in segments[: k + 1]) - 1 for k in range(len(segments))]
        assert [i for i, y in enumerate(labels) if y] == ends[:-1]  # the last segment ends with end-of-turn, unclosed
        assert labels[-1] == 0


def test_training_separates_boundaries_and_is_deterministic(tiny_llm, dataset, tmp_path):
    runtime = Runtime(llm=tiny_llm)
    fast = dict(epochs=100, lr=0.05, runtime=runtime, progress=False)
    report = train_trigger(_config(dataset), out=tmp_path / "t.safetensors", **fast)
    assert (report.train_examples, report.val_examples) == (12, 4)
    assert report.train_positive_rate == pytest.approx(36 / report.train_tokens)  # 3 line breaks per target
    chance = report.val_positive_rate  # F1 of predicting boundaries at random at any rate is about this
    assert report.chosen.f1 > 0.5 > 5 * chance
    assert report.chosen.f1 >= report.at_half.f1
    assert report.loss[-1] < 0.5 * report.loss[0]
    meta = read_meta(report.path)
    assert meta["threshold"] == report.chosen.threshold
    assert meta["label"] == {"segment": "paragraph", "min_tokens": 1, "tokens": 257}
    assert meta["hidden_size"] == 64 and meta["llm"] == tiny_llm.name
    assert meta["validation"]["chosen"]["f1"] == report.chosen.f1 and "at_0.5" in meta["validation"]

    again = train_trigger(_config(dataset), out=tmp_path / "again.safetensors", **fast)
    first, second = load_file(report.path), load_file(again.path)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_training_refuses_targets_without_boundaries(tiny_llm, tmp_path):
    data = tmp_path / "plain.jsonl"
    data.write_text(
        "".join(json.dumps(r) + "\n" for r in _rows(3, 0, rationale=False))
    )  # "The final answer is ..." only
    runtime = Runtime(llm=tiny_llm)
    with pytest.raises(LatentReasonError, match="no segment boundaries under the 'paragraph' rule"):
        train_trigger(
            _config(data, limit=3, val_limit=2), out=tmp_path / "t.safetensors", runtime=runtime, progress=False
        )
    with pytest.raises(LatentReasonError, match="needs validation examples"):
        train_trigger(
            _config(data, limit=3, val_limit=0), out=tmp_path / "t.safetensors", runtime=runtime, progress=False
        )


def test_save_load_roundtrip_and_threshold(tiny_llm, tmp_path):
    torch.manual_seed(0)
    trigger = BoundaryTrigger(64)
    trigger.standardise_on(torch.randn(50, 64) * 3 + 1)
    torch.nn.init.normal_(trigger.linear.weight)
    path = trigger.save(
        tmp_path / "t.safetensors", threshold=0.3, label={"segment": "sentence"}, llm="x", hidden_size=64
    )
    loaded, meta = BoundaryTrigger.load(path, 64)
    assert all(torch.equal(a, b) for a, b in zip(trigger.state_dict().values(), loaded.state_dict().values()))
    hidden = torch.randn(5, 64)
    assert torch.allclose(loaded.probability(hidden), trigger.probability(hidden))
    assert meta["threshold"] == 0.3 and meta["label"] == {"segment": "sentence"}
    stored = Boundaries(SegmentOptions(segment="classifier", trigger=str(path)), tiny_llm)
    assert stored.threshold == 0.3
    assert stored.text_rule.segment == "sentence"
    assert Boundaries(SegmentOptions(segment="classifier", trigger=str(path), threshold=0.7), tiny_llm).threshold == 0.7


def test_a_trigger_for_another_hidden_size_is_a_clear_error(tiny_llm, tmp_path):
    path = _trigger_file(tmp_path / "small.safetensors", hidden=32, bias=0.0)
    with pytest.raises(LatentReasonError) as error:
        Boundaries(SegmentOptions(segment="classifier", trigger=str(path)), tiny_llm)
    assert "trigger.linear.weight has shape (1, 32) but this run needs (1, 64)" in str(error.value)
    assert "hidden size 32" in str(error.value) and "train-trigger" in str(error.value)
    with pytest.raises(ValueError, match="none.safetensors' does not exist; train one"):
        SegmentOptions(segment="classifier", trigger=str(tmp_path / "none.safetensors"))


@pytest.mark.parametrize("decoder", ["reinject", "compress"])
def test_classifier_without_trigger_is_a_config_error(decoder):
    config = load_config(
        overrides={"producer": {"name": "cot"}, "decoder": {"name": decoder, "options": {"segment": "classifier"}}}
    )
    with pytest.raises(ConfigError) as error:
        resolve(config, Registry())
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith("decoder.options: ")
    assert "segment 'classifier' needs trigger" in error.value.problems[0]
    stray = load_config(
        overrides={"decoder": {"name": decoder, "options": {"segment": "sentence", "trigger": "t.safetensors"}}}
    )
    with pytest.raises(ConfigError, match="only with segment 'classifier'"):
        resolve(stray, Registry())


@pytest.mark.parametrize("bias, every", [(50.0, 3), (-50.0, 5)])
def test_reinjection_fires_where_the_trigger_says(tiny_llm, tmp_path, bias, every):
    """Always-yes fires after every min_tokens (3) tokens; always-no only at the tokens cap (5)."""
    path = _trigger_file(tmp_path / "t.safetensors", hidden=64, bias=bias)
    runtime = Runtime(llm=tiny_llm)
    options = ReinjectOptions(
        segment="classifier", trigger=str(path), min_tokens=3, tokens=5, vectors=1, keep_text=True
    )
    inputs = PlaceholderInjector(PlaceholderOptions(), tiny_llm).build(
        "Solve it.", ["What is 2 + 3?", "Sam has 3 clips. How many?"]
    )
    outputs = decode(
        tiny_llm, inputs, GenerationConfig(max_new_tokens=13, stop_at_answer=False), Reinject(options, runtime)
    )
    prompt = inputs.attention_mask.sum(-1).tolist()
    for row, out in enumerate(outputs):
        n = len(out.token_ids)
        injections = (n - 1) // every  # a boundary after tokens every, 2*every, ... before the last one
        assert out.peak_kv == prompt[row] + n + injections  # nothing is dropped; one vector per injection
    assert any(len(out.token_ids) > every for out in outputs)


def test_compress_decodes_and_trains_with_the_classifier(tiny_llm, tmp_path):
    path = _trigger_file(tmp_path / "t.safetensors", hidden=64, bias=50.0)
    runtime = Runtime(llm=tiny_llm)
    options = {"segment": "classifier", "trigger": str(path), "min_tokens": 3, "tokens": 6}
    config = load_config(
        overrides={
            "producer": {"name": "cot"},
            "decoder": {"name": "compress", "options": {**options, "pooling": "attention", "gist_tokens": 1}},
            "generation": {"max_new_tokens": 8, "stop_at_answer": False},
        }
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    plain = prepare(
        load_config(overrides={"producer": {"name": "cot"}, "generation": config.generation.model_dump()}),
        runtime=runtime,
    ).pipeline
    examples = pipeline.task.load(limit=2)
    compressed, reference = pipeline.answer(examples), plain.answer(examples)
    assert all(c.peak_kv < r.peak_kv for c, r in zip(compressed, reference) if r.new_tokens > 4)
    assert any(r.new_tokens > 4 for r in reference)

    tok = tiny_llm.tokenizer
    ids = tok("She sold 48 clips.\nThen 24 more in May.\nSo 72 in total.", add_special_tokens=False)["input_ids"]
    expected = split_segments(ids, tok, SegmentOptions(segment="paragraph", min_tokens=3, tokens=6))
    assert pipeline.decoder.boundaries.split(ids, tok) == expected
    loss = pipeline.decoder.training_loss(pipeline, examples, [ids, ids])
    assert torch.isfinite(loss) and loss.requires_grad


def test_cli_trains_a_trigger_and_a_run_decodes_with_it(tiny_dirs, dataset, tmp_path):
    llm, assistant = tiny_dirs
    runner = CliRunner()
    models = ["--llm", llm, "--assistant", assistant, "--device", "cpu"]
    help_text = runner.invoke(main, ["train-trigger", "--help"]).output
    assert "--set decoder.options.trigger=checkpoints/trigger-gsm8k.safetensors" in help_text
    out = tmp_path / "trigger.safetensors"
    result = runner.invoke(
        main,
        [
            "train-trigger",
            "--producer",
            "cot",
            "--task",
            "gsm8k",
            "--source",
            str(dataset),
            "--train-limit",
            "8",
            "--val-limit",
            "3",
            "--label",
            "sentence",
            "--epochs",
            "100",
            "--out",
            str(out),
            "--quiet",
            *models,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "examples: 8 train, 3 validation" in result.output
    assert "F1" in result.output and f"trigger: {out}" in result.output
    meta = read_meta(out)
    assert meta["label"]["segment"] == "sentence" and meta["train_examples"] == 8 and meta["epochs"] == 100
    result = runner.invoke(
        main,
        [
            "run",
            "--producer",
            "cot",
            "--task",
            "gsm8k",
            "--limit",
            "2",
            "--max-new-tokens",
            "6",
            "--set",
            "decoder.name=reinject",
            "--set",
            "decoder.options.segment=classifier",
            "--set",
            f"decoder.options.trigger={out}",
            "--output",
            str(tmp_path / "res"),
            "--quiet",
            *models,
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "| gsm8k | cot+reinject | 2 |" in result.output


def test_cli_reports_a_bad_trigger_path_without_traceback(tiny_dirs, tmp_path):
    llm, assistant = tiny_dirs
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--producer",
            "cot",
            "--limit",
            "1",
            "--set",
            "decoder.name=reinject",
            "--set",
            "decoder.options.segment=classifier",
            "--set",
            f"decoder.options.trigger={tmp_path / 'missing.safetensors'}",
            "--llm",
            llm,
            "--assistant",
            assistant,
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_the_threshold_lies_between_the_scores_it_separates():
    from latentreason.training.trigger import best_threshold

    saturated = best_threshold(torch.tensor([1.0, 1.0, 0.3, 0.1]), torch.tensor([1, 1, 0, 0]))
    assert saturated == pytest.approx(0.65)  # not 1.0, which a 0.9999 at decoding would miss
    tied = best_threshold(torch.tensor([0.9, 0.5, 0.5, 0.1]), torch.tensor([1, 1, 0, 0]))
    assert tied == pytest.approx(0.3)  # the tie at 0.5 is not split: the best cut takes both
