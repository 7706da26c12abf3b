"""Data-parallel training and evaluation: 2 gloo ranks under torchrun give what 1 process gives.

One torchrun launch (2 CPU processes) runs ``latentreason train`` and then
``latentreason run`` with the trained projector, on the tiny models saved as
folders; the tests compare its outputs with one process. The rest checks the
sharding and merging pieces in-process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from itertools import chain
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from latentreason.api import run, train
from latentreason.assembly.prepare import prepare
from latentreason.config import load_config
from latentreason.distributed import World, setup
from latentreason.errors import LatentReasonError
from latentreason.evaluation.results import ResultsFolder
from latentreason.evaluation.runner import evaluate

TRAIN = {
    "producer": {"name": "softcot", "options": {"n_thoughts": 2, "n_thoughts_train": 3}},
    "data": {"task": "gsm8k"},
    # 7 examples in global batches of 3 with 2 accumulated batches: steps over (3, 3) and (1)
    # examples, so rank 1's share is empty in the last step; 3 validation examples split 2/1.
    "train": {
        "limit": 7,
        "batch_size": 3,
        "grad_accum": 2,
        "val_limit": 3,
        "lr": 1e-2,
        "warmup_steps": 0,
        "max_target_tokens": 16,
    },
    "audit": {"after_training": False},  # audited in tests/system/test_cli.py
}
# SoftCoT + LightThinker as published: the projector, learned gists and a LoRA adapter, trained under the gist mask
LIGHTTHINKER_TRAIN = TRAIN | {
    "producer": {"name": "softcot", "options": {"n_thoughts": 2}},
    "adapter": {"rank": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    "decoder": {
        "name": "compress",
        "options": {"pooling": "learned", "gist_tokens": 2, "segment": "tokens", "tokens": 3},
    },
}
EVALUATE = {
    "producer": {"name": "softcot", "options": {"n_thoughts": 2}},
    "data": {"task": "gsm8k", "limit": 5},
    # batch size 1: each example is computed alone, exactly as in one process
    "generation": {"max_new_tokens": 6, "batch_size": 1},
}
RESULT_FIELDS = ("id", "generation", "strict", "flexible", "gold", "strict_correct", "flexible_correct", "new_tokens")

# A torchrun worker running several CLI commands in one process group.
WORKER = "import json, sys\nfrom latentreason.cli import main\nfor args in json.loads(sys.argv[1]):\n    main(args, standalone_mode=False)\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _models(tiny_dirs) -> dict:
    llm, assistant = tiny_dirs
    # float32: ``auto`` would be bfloat16 on a CPU with native bf16, and ranks must agree to float32 rounding
    return {"models": {"llm": llm, "assistant": assistant, "device": "cpu", "dtype": "float32"}}


def _write_config(path: Path, overrides: dict) -> str:
    path.write_text(json.dumps(overrides))  # JSON is YAML
    return str(path)


@pytest.fixture(scope="module")
def two_ranks(tiny_dirs, tmp_path_factory):
    """The folder of one 2-rank torchrun job: ``two-train/`` (checkpoints) and ``two-run/`` (results)."""
    root = tmp_path_factory.mktemp("distributed")
    commands = [
        [
            "train",
            "--config",
            _write_config(root / "train.yaml", _models(tiny_dirs) | TRAIN),
            "--out",
            str(root / "two-train"),
            "--quiet",
        ],
        [
            "train",
            "--config",
            _write_config(root / "lightthinker.yaml", _models(tiny_dirs) | LIGHTTHINKER_TRAIN),
            "--out",
            str(root / "two-lightthinker"),
            "--quiet",
        ],
        [
            "run",
            "--config",
            _write_config(root / "run.yaml", _models(tiny_dirs) | EVALUATE),
            "--output",
            str(root / "two-run"),
            "--checkpoint",
            str(root / "two-train" / "last.safetensors"),
            "--quiet",
        ],
        [
            "compare",
            _write_config(
                root / "experiment.yaml",
                {
                    "base": _models(tiny_dirs) | {k: EVALUATE[k] for k in ("data", "generation")},
                    "methods": {
                        "cot": {"producer": "cot"},
                        "pause-2": {"producer": {"name": "pause", "options": {"n_thoughts": 2}}},
                    },
                },
            ),
            "--output",
            str(root / "two-compare"),
            "--quiet",
        ],
    ]
    (root / "worker.py").write_text(WORKER)
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        str(root / "worker.py"),
        json.dumps(commands),
    ]
    done = subprocess.run(
        launch,
        cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("steps: 2") == 2 and done.stdout.count("| gsm8k | softcot | 5 |") == 1  # rank 0 prints
    assert done.stdout.count("| gsm8k | cot | 5 |") == 1 and done.stdout.count("| gsm8k | pause-2 | 5 |") == 1
    return root


@pytest.mark.parametrize(("recipe", "folder"), [(TRAIN, "two-train"), (LIGHTTHINKER_TRAIN, "two-lightthinker")])
def test_two_ranks_train_the_same_weights_as_one(two_ranks, tiny_dirs, tmp_path, recipe, folder):
    single = load_config(
        overrides=_models(tiny_dirs) | recipe | {"train": {**recipe["train"], "checkpoint_dir": str(tmp_path)}}
    )
    result = train(single, progress=False)

    one, two = load_file(result.weights), load_file(two_ranks / folder / "last.safetensors")
    assert one.keys() == two.keys()
    for key in one:
        # Adam's first steps are nearly sign(gradient), which amplifies rounding in near-zero components;
        # one step moves a weight by about lr = 1e-2, and the losses below pin the gradient's scale.
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-4, msg=key)
    if recipe is LIGHTTHINKER_TRAIN:
        assert any(key.startswith("adapter.") for key in one) and any(key.startswith("decoder.") for key in one)
    history = json.loads((two_ranks / folder / "history.json").read_text())
    assert [h["loss"] for h in history["train"]] == pytest.approx([h["loss"] for h in result.history], rel=1e-5)
    assert history["validation"][0]["loss"] == pytest.approx(result.validation[0]["loss"], rel=1e-5)


def _results(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


def test_two_ranks_evaluate_like_one_and_merge_into_one_file(two_ranks, tiny_dirs, tmp_path):
    config = load_config(
        overrides=_models(tiny_dirs) | EVALUATE | {"checkpoint": str(two_ranks / "two-train" / "last.safetensors")}
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the torchrun workers: the same float rounding
    try:
        run(config, output=tmp_path, progress=False)
    finally:
        torch.set_num_threads(threads)

    two, one = _results(two_ranks / "two-run"), _results(tmp_path)
    assert [r["id"] for r in two] == [
        f"gsm8k-test-{i}" for i in (0, 1, 2, 4, 7)
    ]  # example order, no duplicates or gaps
    assert [{k: r[k] for k in RESULT_FIELDS} for r in two] == [{k: r[k] for k in RESULT_FIELDS} for r in one]
    assert sorted(p.name for p in (two_ranks / "two-run").iterdir()) == [
        "config.yaml",
        "samples.jsonl",
        "summary.json",
        "summary.md",
        "weights.json",
    ]
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (tmp_path, two_ranks / "two-run")]
    assert summaries[0]["flexible_acc"] == summaries[1]["flexible_acc"] and summaries[1]["n"] == 5


def test_a_comparison_under_torchrun_shards_every_cell(two_ranks):
    for cell in ("gsm8k-cot-seed0", "gsm8k-pause-2-seed0"):
        folder = two_ranks / "two-compare" / cell
        assert [r["id"] for r in _results(folder)] == [f"gsm8k-test-{i}" for i in (0, 1, 2, 4, 7)]
        assert not list(folder.glob("samples.rank*.jsonl"))  # merged by rank 0
    table = (two_ranks / "two-compare" / "comparison.md").read_text()
    assert "| gsm8k | cot | 5 |" in table and "| gsm8k | pause-2 | 5 |" in table


def test_shares_and_shards_cover_each_item_once():
    for size in (1, 2, 3, 5):
        for n in range(9):
            items = list(range(n))
            shares = [World(rank, size).share(items) for rank in range(size)]
            assert list(chain(*shares)) == items  # contiguous, in order
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
            shards = [World(rank, size).shard(items) for rank in range(size)]
            assert sorted(chain(*shards)) == items and shards[0] == items[::size]


def _record(i: str) -> dict:
    return {"id": i, "strict_correct": True, "flexible_correct": True, "new_tokens": 1, "latency_s": 0.1}


@pytest.fixture()
def config():
    return load_config(overrides={"producer": {"name": "cot"}})


def test_merge_orders_shards_and_refuses_gaps_and_duplicates(tmp_path, config):
    folder = ResultsFolder(tmp_path, config)
    folder.append([_record("a")])
    folder.append([_record("d"), _record("b")], rank=0)
    folder.append([_record("c")], rank=1)
    with pytest.raises(LatentReasonError, match=r"1 example\(s\) have no result .*'e'.*share"):
        folder.merge(["a", "b", "c", "d", "e"])
    assert [r["id"] for r in folder.merge(["a", "b", "c", "d"])] == ["a", "b", "c", "d"]
    assert [r["id"] for r in _results(tmp_path)] == ["a", "b", "c", "d"]
    assert folder.shard_files() == []

    folder.append([_record("x")], rank=0)
    folder.append([_record("x")], rank=1)
    with pytest.raises(LatentReasonError, match="'x' has two results .* two runs wrote into this folder"):
        folder.merge(["x"])


def test_a_merge_interrupted_before_deleting_the_shards_is_harmless(tmp_path, config):
    folder = ResultsFolder(tmp_path, config)
    folder.append([_record("a"), _record("b")])
    folder.append([_record("b")], rank=1)  # already merged into samples.jsonl
    folder.append([_record("c")], rank=0)
    assert [r["id"] for r in folder.merge(["a", "b", "c"])] == ["a", "b", "c"]
    assert [r["id"] for r in _results(tmp_path)] == ["a", "b", "c"]


def test_a_torn_line_stays_apart_from_the_next_record(tmp_path, config):
    folder = ResultsFolder(tmp_path, config)
    folder.append([_record("a")], rank=0)
    with open(folder.shard_file(0), "a") as f:
        f.write('{"id": "b", "gen')  # killed in the middle of a write
    folder.append([_record("b")], rank=0)
    assert [r["id"] for r in folder.done()] == ["a", "b"]


def test_records_with_unicode_line_separators_are_read_back(tmp_path, config):
    folder = ResultsFolder(tmp_path, config)
    odd = _record("a") | {"generation": "one\u2028two\x85three\u2029"}  # json.dumps leaves these unescaped
    folder.append([odd, _record("b")])
    assert folder.done() == [odd, _record("b")]


def test_evaluation_resumes_from_the_shards_of_an_interrupted_distributed_run(runtime, tmp_path, monkeypatch):
    config = load_config(
        overrides={"producer": {"name": "cot"}, "data": {"task": "gsm8k"}, "generation": {"max_new_tokens": 3}}
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    examples = pipeline.task.load(limit=5)
    full = evaluate(pipeline, examples, tmp_path / "straight", progress=False)
    records = {r["id"]: r for r in _results(tmp_path / "straight")}

    folder = ResultsFolder(tmp_path / "resumed", pipeline.config)  # 2 ranks were killed after a batch each
    folder.append([records[examples[0].id]], rank=0)
    folder.append([records[examples[1].id], records[examples[3].id]], rank=1)
    asked = []
    stream = pipeline.stream
    monkeypatch.setattr(pipeline, "stream", lambda batch: asked.extend(e.id for e in batch) or stream(batch))
    resumed = evaluate(pipeline, examples, tmp_path / "resumed", progress=False)
    assert asked == [examples[2].id, examples[4].id]
    assert [r["id"] for r in _results(tmp_path / "resumed")] == [e.id for e in examples]
    assert folder.shard_files() == []
    assert (resumed.n, resumed.flexible_acc, resumed.mean_new_tokens) == (
        full.n,
        full.flexible_acc,
        full.mean_new_tokens,
    )


def test_shards_of_a_run_with_other_settings_are_refused(tmp_path, config):
    ResultsFolder(tmp_path, config).append([_record("a")], rank=1)
    other = config.model_copy(update={"seed": 7})
    with pytest.raises(LatentReasonError, match="other settings \\(seed\\)"):
        ResultsFolder(tmp_path, other)


def test_a_job_not_started_by_torchrun_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(LatentReasonError, match="WORLD_SIZE='two' must be an integer"):
        setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(
        LatentReasonError, match="Could not join the process group of 2 processes .* Start the job with torchrun"
    ):
        setup("cpu")
    monkeypatch.delenv("WORLD_SIZE")
    assert setup("cpu") == World()
