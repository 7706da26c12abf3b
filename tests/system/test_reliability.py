"""A run killed with SIGKILL leaves no process behind and resumes to the results of an uninterrupted run.

Training resumes to the same weights (within 1e-6); an evaluation, on either
engine, keeps every example finished before the kill and ends with the greedy
results of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file

from latentreason.cli import main
from latentreason.decoding import vllm_lock
from latentreason.errors import LatentReasonError
from latentreason.models.vllm_env import vllm_python
from latentreason.models.zoo import is_cached
from latentreason.testing import save_tiny_model

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
    from latentreason.api import prepare
    from latentreason.config import load_config
    from latentreason.evaluation.runner import evaluate

    config = load_config(
        overrides={"producer": {"name": "cot"}, "data": {"task": "gsm8k"}, "generation": {"max_new_tokens": 3}}
    )
    pipeline = prepare(config, runtime=runtime).pipeline
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
    from latentreason.api import prepare
    from latentreason.config import load_config
    from latentreason.evaluation.runner import evaluate
    from latentreason.evaluation.tables import read_cell

    config = load_config(
        overrides={"producer": {"name": "cot"}, "data": {"task": "gsm8k"}, "generation": {"max_new_tokens": 3}}
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    examples = pipeline.task.load(limit=4)
    evaluate(pipeline, examples, tmp_path, progress=False)
    evaluate(pipeline, examples[1:3], tmp_path, progress=False)  # a later run with another limit and offset

    cell = read_cell(tmp_path)
    assert [r["id"] for r in cell.records] == [ex.id for ex in examples[1:3]]
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 4  # nothing is lost


def _descendants(pid: int) -> set[int]:
    """The processes ``pid`` started, those they started, and so on, as they are now."""
    children: dict[int, list[int]] = {}
    for child, process in vllm_lock.processes().items():
        children.setdefault(process.ppid, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> dict[int, str]:
    """The processes of ``pids`` that still run (an ended one its parent has not reaped yet does not), as ``ps`` shows them."""
    running = {pid: p for pid, p in vllm_lock.processes().items() if pid in pids and p.state != "Z"}
    return {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200] for pid in running}


def _records(folder: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (folder / "samples.jsonl").read_text().splitlines())}


def _run_command(args: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "latentreason.cli", "run", *args, "--output", str(out), "--quiet"]


def _kill_and_resume(args: list[str], out: Path, log: Path) -> tuple[dict[str, dict], dict[int, str]]:
    """Run ``latentreason run ARGS``, SIGKILL it once its first example is written, then run it again.

    Returns:
        The records written before the kill, and the processes the killed run
        had started that still ran 5 s after the kill (pid: command line).
    """
    samples = out / "samples.jsonl"
    with open(log, "w") as stream:
        process = subprocess.Popen(_run_command(args, out), stdout=stream, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 900
        while not (samples.exists() and samples.stat().st_size) and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.005)
        started = _descendants(process.pid)
        process.send_signal(signal.SIGKILL)  # kill -9: no handler runs, nothing is flushed
        assert process.wait() == -signal.SIGKILL, log.read_text()[-3000:]
    time.sleep(5)
    survivors = _alive(started)
    kept = _records(out)
    with open(log, "a") as stream:  # the same command again
        subprocess.run(_run_command(args, out), stdout=stream, stderr=subprocess.STDOUT, check=True, timeout=900)
    return kept, survivors


def _skip_without_a_free_vllm() -> None:
    import fcntl

    try:
        vllm_python()
    except LatentReasonError as exc:
        pytest.skip(str(exc))
    if vllm_lock.lock_path().exists():
        with open(vllm_lock.lock_path()) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pytest.skip(f"another run's vLLM engine is running on this machine: {lock.read()}")


def _assert_killed_and_resumed(args: list[str], tmp_path: Path, examples: int) -> None:
    """The kill test: nothing of the killed run survives it; the resumed run keeps its records and ends as one run."""
    subprocess.run(_run_command(args, tmp_path / "straight"), capture_output=True, check=True, timeout=1800)
    out, log = tmp_path / "killed", tmp_path / "log.txt"
    kept, survivors = _kill_and_resume(args, out, log)

    assert not survivors, f"alive 5 s after the kill: {survivors}\n{log.read_text()[-3000:]}"
    assert 1 <= len(kept) < examples, "killed mid-way"
    resumed, expected = _records(out), _records(tmp_path / "straight")
    assert all(resumed[i] == record for i, record in kept.items())  # kept as written (latency included), not redone
    assert resumed.keys() == expected.keys()
    for field in ("generation", "strict", "flexible", "new_tokens", "truncated"):
        assert {i: r[field] for i, r in resumed.items()} == {i: r[field] for i, r in expected.items()}, field


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
@pytest.mark.parametrize(
    "engine",
    ["transformers", pytest.param("vllm", marks=pytest.mark.slow)],  # vLLM starts in 1 to 3 minutes, three times
)
def test_an_evaluation_killed_with_sigkill_leaves_no_process_and_resumes_to_the_uninterrupted_results(
    engine, tiny_dirs, tmp_path, monkeypatch
):
    if engine == "vllm":
        _skip_without_a_free_vllm()
        monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the tiny model needs little
    # vLLM's CPU attention has kernels for head sizes from 32 up: hidden 256 over 4 heads
    llm = str(save_tiny_model(tmp_path / "llm", "qwen2", hidden=256, seed=1))
    args = [
        *("--producer", "cot", "--task", "gsm8k", "--limit", "8", "--batch-size", "1", "--max-new-tokens", "16"),
        *("--llm", llm, "--assistant", tiny_dirs[1], "--device", "cpu", "--dtype", "float32", "--engine", engine),
        *("--set", "generation.stop_at_answer=false"),
    ]
    _assert_killed_and_resumed(args, tmp_path, 8)


@pytest.mark.slow
def test_a_vllm_evaluation_of_the_real_pair_killed_with_sigkill_leaves_no_process_and_resumes(tmp_path):
    from latentreason.config import load_config

    _skip_without_a_free_vllm()
    models = load_config().models
    if not (is_cached(models.llm) and is_cached(models.assistant)):
        pytest.skip("default models not cached: run `latentreason models fetch` first")
    args = [
        *("--producer", "cot", "--task", "gsm8k", "--limit", "24", "--batch-size", "8", "--max-new-tokens", "256"),
        *("--dtype", "float32", "--engine", "vllm"),
    ]
    _assert_killed_and_resumed(args, tmp_path, 24)


HOLD_THE_ENGINE_LOCK = """
import os, time
from latentreason.decoding.vllm_lock import hold_engine_lock, record_worker
os.setsid()  # a process group of its own, as an engine worker leads
hold_engine_lock()
record_worker(os.getpid())
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_vllm_engine_fails_at_once_naming_the_first_and_its_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTREASON_CACHE", str(tmp_path))
    monkeypatch.setattr(vllm_lock, "_held", None)  # this process holds no lock yet
    first = subprocess.Popen([sys.executable, "-c", HOLD_THE_ENGINE_LOCK, "--the-first-run"], stdout=subprocess.PIPE)
    try:
        assert first.stdout is not None and first.stdout.readline() == b"held\n"
        message = rf"pid {first.pid} \(`-c --the-first-run`\); its engine \(process group {first.pid}\) holds 0\.\d GiB"
        with pytest.raises(LatentReasonError, match=message):
            vllm_lock.hold_engine_lock()
    finally:
        first.kill()  # SIGKILL: the lock file stays, naming it
        first.wait()
    taken = vllm_lock.hold_engine_lock()  # the kernel released the killed run's lock: no stale lock
    try:
        assert json.loads(vllm_lock.lock_path().read_text())["pid"] == os.getpid()
    finally:
        os.close(taken)
