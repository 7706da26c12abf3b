"""Tasks written as YAML files: the same prompts and scores as a Python task, every problem at once, listing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.builtins.tasks.common import DATA_ROOT
from latentreason.cli import main
from latentreason.components.task_file import load_task_file
from latentreason.config import load_config
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.evaluation.runner import default_output, task_label

DOC = (Path(__file__).parents[3] / "docs" / "tasks.md").read_text(encoding="utf-8")
SVAMP_YAML = re.search(r"<!-- file: svamp.yaml -->\n```yaml\n(.*?)```", DOC, re.S)[1]  # type: ignore[index]


@pytest.fixture()
def svamp_file(tmp_path) -> Path:
    """The task file of docs/tasks.md, next to a copy of the shipped SVAMP data."""
    (tmp_path / "svamp").mkdir()
    (tmp_path / "svamp" / "test.jsonl").write_text((DATA_ROOT / "svamp" / "test.jsonl").read_text())
    path = tmp_path / "svamp.yaml"
    path.write_text(SVAMP_YAML)
    return path


def _pipeline(task: str, runtime, registry) -> Pipeline:
    settings = {"producer": {"name": "cot"}, "data": {"task": task}, "generation": {"max_new_tokens": 8}}
    return prepare(load_config(overrides=settings), registry, runtime).pipeline


@pytest.mark.plugins  # runs the shipped cot producer
def test_the_documented_task_file_gives_the_python_task_s_prompts_and_scores(svamp_file, runtime, monkeypatch):
    monkeypatch.setenv("LATENTREASON_DISABLE_PLUGINS", "builtin:svamp")  # the file's svamp replaces the built-in one
    from_file = _pipeline(str(svamp_file), runtime, Registry())
    monkeypatch.delenv("LATENTREASON_DISABLE_PLUGINS")
    python = _pipeline("svamp", runtime, Registry())
    for style in ("default", "softcot"):
        assert from_file.task.instruction_for(style) == python.task.instruction_for(style)
    examples = python.task.load(limit=3)
    assert from_file.task.load(limit=3) == examples
    assert from_file.prompts(examples).prompts == python.prompts(examples).prompts
    a, b = from_file.answer(examples), python.answer(examples)
    assert [p.generations for p in a] == [p.generations for p in b]
    assert [p.score for p in a] == [p.score for p in b]
    gold = [f"So it is \\boxed{{{ex.answer}}}." for ex in examples]
    assert [from_file.evaluator.score(g, ex) for g, ex in zip(gold, examples, strict=True)] == [
        python.evaluator.score(g, ex) for g, ex in zip(gold, examples, strict=True)
    ]
    assert all(from_file.evaluator.score(g, ex).strict_correct for g, ex in zip(gold, examples, strict=True))


def test_files_per_split_and_a_question_template(tmp_path, core_registry):
    (tmp_path / "dev.jsonl").write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n')
    (tmp_path / "arith.yaml").write_text(
        "answer_type: number\ninstruction: Add.\ndata: {files: {dev: dev.jsonl}}\neval_split: dev\n"
        "question_template: 'Q{id}: {question}'\n"
    )
    plan = resolve(
        load_config(overrides={"producer": {"name": "question"}, "data": {"task": str(tmp_path / "arith.yaml")}}),
        core_registry,
    )
    assert plan.task.name == "arith" and plan.evaluator.name == "number"
    [example] = plan.examples()
    assert plan.task.format_question(example) == "Qa: 1+1?"


def test_every_problem_of_a_task_file_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "answer_type: numeric\ninstruction: x\nevaluator: numbr\ncolour: red\n"
        "data: {files: {test: missing.jsonl}}\nquestion_template: '{question} {options}'\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_task_file(path, Registry().names("evaluator"))
    message = str(caught.value)
    assert "answer_type: Input should be 'number', 'choice' or 'yesno'" in message
    assert "colour: unknown key" in message
    assert "missing.jsonl' does not exist" in message
    assert "question_template: unknown field {options} (the fields are: {question}, {choices}, {id})" in message
    path.write_text("answer_type: number\ninstruction: x\nevaluator: numbr\ndata: {folder: .}\neval_split: dev\n")
    (tmp_path / "test.jsonl").write_text('{"id": "a", "question": "q", "answer": "1"}\n')
    with pytest.raises(ConfigError) as caught:
        load_task_file(path, Registry().names("evaluator"))
    assert "evaluator: Unknown evaluator 'numbr'. Did you mean 'number'?" in str(caught.value)
    assert "eval_split: the data has no split 'dev' (it has: test)" in str(caught.value)


def test_a_run_config_naming_a_broken_task_file_lists_its_problems_with_the_rest(tmp_path, core_registry):
    path = tmp_path / "t.yaml"
    path.write_text("answer_type: yesno\ninstruction: x\ndata: {folder: nowhere}\n")
    with pytest.raises(ConfigError) as caught:
        resolve(load_config(overrides={"producer": {"name": "cott"}, "data": {"task": str(path)}}), core_registry)
    message = str(caught.value)
    assert f"data.task: task file {str(path)!r}: data.folder: folder" in message and "does not exist" in message
    assert "producer.name: Unknown producer 'cott'" in message


def test_a_hub_task_offline_names_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    path = tmp_path / "hubtask.yaml"
    path.write_text("answer_type: number\ninstruction: x\ndata: {hub: nobody/no-such-dataset}\n")
    task = load_task_file(path)
    assert task.splits() == ["test"]
    with pytest.raises(LatentReasonError, match="Could not .*hub dataset 'nobody/no-such-dataset'.*local .jsonl file"):
        task.load()


def test_cli_validates_and_lists_task_files(svamp_file, tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(main, ["validate", str(svamp_file)])
    assert result.exit_code == 0, result.output
    assert "ok: task svamp (number, evaluator number), splits: test" in result.output
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mysvamp.yaml").write_text(
        SVAMP_YAML.replace("name: svamp", "name: mysvamp").replace("folder: svamp", f"folder: {tmp_path / 'svamp'}")
    )
    monkeypatch.setenv("LATENTREASON_TASKS_DIR", str(folder))
    result = runner.invoke(main, ["tasks"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^mysvamp +number +eval=test", result.output, re.M)
    (folder / "broken.yaml").write_text("answer_type: number\n")
    result = runner.invoke(main, ["tasks"])
    assert result.exit_code == 2
    assert "broken.yaml: instruction: required" in result.output and "broken.yaml: data: required" in result.output


@pytest.mark.plugins  # runs the shipped cot producer
def test_a_built_in_task_on_another_source_is_labelled_with_it(tmp_path, runtime):
    source = tmp_path / "f.jsonl"
    source.write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n')
    settings = {"producer": {"name": "cot"}, "data": {"task": "gsm8k", "source": str(source)}}
    pipeline = prepare(load_config(overrides=settings), Registry(), runtime).pipeline
    assert task_label(pipeline) == "gsm8k@f.jsonl"
    assert default_output(pipeline).name == "gsm8k@f.jsonl-cot-test"


@pytest.mark.plugins  # runs the shipped cot producer
def test_run_a_task_file_and_a_built_in_task_on_another_source_from_the_cli(tmp_path, tiny_dirs):
    llm, assistant = tiny_dirs
    data = tmp_path / "dev.jsonl"
    data.write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n')
    (tmp_path / "arith.yaml").write_text(
        "answer_type: number\ninstruction: Add.\ndata: {files: {dev: dev.jsonl}}\neval_split: dev\n"
    )
    models = ["--llm", llm, "--assistant", assistant, "--device", "cpu", "--max-new-tokens", "3", "--quiet"]
    for task, source, label in (
        (str(tmp_path / "arith.yaml"), [], "arith"),
        ("gsm8k", ["--source", str(data)], "gsm8k@dev.jsonl"),
    ):
        out = tmp_path / label
        result = CliRunner().invoke(
            main, ["run", "--task", task, *source, "--producer", "cot", *models, "--output", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert json.loads((out / "summary.json").read_text())["task"] == label
