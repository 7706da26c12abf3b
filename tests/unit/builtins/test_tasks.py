"""Built-in tasks: shipped data, loading from files, folders and the hub, and clear errors."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from latentreason.builtins.evaluators import BUILTIN_EVALUATORS
from latentreason.builtins.tasks import BUILTIN_TASKS
from latentreason.components.answers import parse_number
from latentreason.components.example import Example
from latentreason.components.task import DATA_DIR_ENV, TaskSpec
from latentreason.errors import LatentReasonError

SHIPPED = {
    "gsm8k": {"test": 1119, "train": 2000},
    "aqua": {"test": 54, "validation": 254},
    "strategyqa": {"test": 258, "train": 1831},
    "date_understanding": {"train": 295},
    "svamp": {"test": 800},
}
NOT_SHIPPED = ("asdiv", "asdiv_aug", "multiarith", "mathqa_bigbench")

ROWS: dict[str, list[dict[str, Any]]] = {
    "number": [
        {
            "id": "n-0",
            "question": "Tom has 2 apples and buys 3. How many?",
            "answer": "5",
            "rationale": "2+3=<<2+3=5>>5",
        },
        {"id": "n-1", "question": "What is 10 minus 4?", "answer": "6"},
        {"id": "n-2", "question": "What is 7 times 3?", "answer": 21},
    ],
    "choice": [
        {"id": "c-0", "question": "2+2?", "choices": ["A) 3", "B) 4", "C) 5", "D) 6", "E) 7"], "answer": "B"},
        {"id": "c-1", "question": "3*3?", "choices": ["A) 9", "B) 6", "C) 3", "D) 1", "E) 0"], "answer": "A"},
    ],
    "yesno": [
        {"id": "y-0", "question": "Is water wet?", "answer": "Yes", "rationale": "Water makes things wet."},
        {"id": "y-1", "question": "Can pigs fly?", "answer": "No"},
    ],
}


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the hub fail at once instead of retrying (the flags are read at import)."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def check_examples(task: TaskSpec, examples: list[Example]) -> None:
    assert examples
    assert len({ex.id for ex in examples}) == len(examples)
    for ex in examples:
        assert ex.question.strip() and ex.answer
        if task.answer_type == "choice":
            letters = [c[0] for c in ex.choices]
            assert ex.answer in letters and all(c[1:3] == ") " for c in ex.choices)
        elif task.answer_type == "yesno":
            assert ex.answer in ("Yes", "No") and not ex.choices
        else:
            assert not ex.choices


def test_builtin_task_names() -> None:
    assert set(BUILTIN_TASKS) == set(SHIPPED) | set(NOT_SHIPPED)
    for name, task in BUILTIN_TASKS.items():
        assert task.name == name


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_task_metadata_is_consistent(name: str) -> None:
    task = BUILTIN_TASKS[name]
    assert task.evaluator in BUILTIN_EVALUATORS
    assert task.evaluator == task.answer_type
    assert r"The final answer is \boxed{X}" in task.instruction
    assert task.description and task.license and task.source
    assert (task.hub is not None and task.eval_split in task.hub.splits) or task.data_dir is not None


@pytest.mark.parametrize(("name", "split"), [(n, s) for n, splits in SHIPPED.items() for s in splits])
def test_shipped_data_loads(name: str, split: str) -> None:
    task = BUILTIN_TASKS[name]
    examples = task.load(split)
    assert len(examples) == SHIPPED[name][split]
    check_examples(task, examples)


@pytest.mark.parametrize(("name", "split"), [(n, s) for n, splits in SHIPPED.items() for s in splits])
def test_gold_targets_score_as_correct(name: str, split: str) -> None:
    task = BUILTIN_TASKS[name]
    evaluator_class = BUILTIN_EVALUATORS[task.evaluator]
    evaluator = evaluator_class(evaluator_class.Options())
    for ex in task.load(split):
        score = evaluator.score(task.target_text(ex), ex)
        assert score.strict_correct and score.flexible_correct, (ex.id, score)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_default_splits_are_shipped(name: str) -> None:
    task = BUILTIN_TASKS[name]
    assert task.eval_split in SHIPPED[name]
    assert task.train_split is None or task.train_split in SHIPPED[name]
    assert task.load() == task.load(task.eval_split)


def test_default_splits() -> None:
    assert BUILTIN_TASKS["date_understanding"].eval_split == "train"
    assert BUILTIN_TASKS["aqua"].train_split == "validation"
    assert BUILTIN_TASKS["asdiv_aug"].train_split is None


@pytest.mark.parametrize("name", NOT_SHIPPED)
def test_unshipped_tasks_load_from_a_file(name: str, tmp_path: Path) -> None:
    task = BUILTIN_TASKS[name]
    assert task.data_dir is None
    path = write_jsonl(tmp_path / "mine.jsonl", ROWS[task.answer_type])
    examples = task.load(source=str(path))
    assert [ex.id for ex in examples] == [r["id"] for r in ROWS[task.answer_type]]
    check_examples(task, examples)


def test_numeric_answers_are_read_as_text(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "test.jsonl", ROWS["number"])
    examples = BUILTIN_TASKS["gsm8k"].load(source=path)
    assert examples[2].answer == "21"


def test_data_dir_env_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "asdiv" / "test.jsonl", ROWS["number"][:2])
    write_jsonl(tmp_path / "asdiv" / "train.jsonl", ROWS["number"])
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    task = BUILTIN_TASKS["asdiv"]
    assert len(task.load()) == 2
    assert len(task.load(task.train_split)) == 3
    assert {"test", "train"} <= set(task.splits())


def test_shipped_data_comes_before_the_env_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", ROWS["number"])
    write_jsonl(tmp_path / "gsm8k" / "dev.jsonl", ROWS["number"])
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    task = BUILTIN_TASKS["gsm8k"]
    assert len(task.load()) == 1119
    assert len(task.load("dev")) == 3


def test_folder_source(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "test.jsonl", ROWS["yesno"])
    assert len(BUILTIN_TASKS["strategyqa"].load(source=str(tmp_path))) == 2
    write_jsonl(tmp_path / "root" / "strategyqa" / "train.jsonl", ROWS["yesno"])
    assert len(BUILTIN_TASKS["strategyqa"].load("train", source=tmp_path / "root")) == 2


def test_format_question_lists_choices() -> None:
    task = BUILTIN_TASKS["aqua"]
    ex = Example(id="x", question="What is 2+2?", answer="B", choices=("A) 3", "B) 4", "C) 5"))
    assert task.format_question(ex) == "What is 2+2?\nAnswer Choices: A) 3 B) 4 C) 5"
    plain = Example(id="y", question="What is 2+2?", answer="4")
    assert BUILTIN_TASKS["gsm8k"].format_question(plain) == "What is 2+2?"


def test_format_question_of_shipped_choice_data() -> None:
    ex = BUILTIN_TASKS["date_understanding"].load(limit=1)[0]
    text = BUILTIN_TASKS["date_understanding"].format_question(ex)
    assert text.startswith(ex.question + "\nAnswer Choices: A) ") and " F) " in text


def test_target_text_cleans_calculator_annotations() -> None:
    task = BUILTIN_TASKS["gsm8k"]
    ex = task.load("train", limit=1)[0]
    assert "<<" in (ex.rationale or "")
    target = task.target_text(ex)
    assert "<<" not in target and ">>" not in target
    assert target.endswith("\nThe final answer is \\boxed{72}.")
    assert "48/2 = 24 clips" in target


def test_target_text_variants() -> None:
    task = BUILTIN_TASKS["asdiv_aug"]
    annotated = Example(id="a", question="q", answer="16", rationale="<<8+8=16>>")
    assert task.target_text(annotated) == "8+8=16\nThe final answer is \\boxed{16}."
    bare = Example(id="b", question="q", answer="C")
    assert BUILTIN_TASKS["aqua"].target_text(bare) == "The final answer is \\boxed{C}."
    ex = BUILTIN_TASKS["aqua"].load("validation", limit=1)[0]
    assert BUILTIN_TASKS["aqua"].target_text(ex).startswith(ex.rationale.strip())  # type: ignore[union-attr]


def test_limit_and_offset_slice_in_file_order() -> None:
    task = BUILTIN_TASKS["svamp"]
    everything = task.load()
    assert task.load(limit=3, offset=2) == everything[2:5]
    assert task.load(limit=10_000) == everything
    assert task.load(offset=len(everything) - 1) == everything[-1:]


def test_unknown_split_lists_available_splits() -> None:
    with pytest.raises(LatentReasonError, match=r"no split 'dev'.*Available splits: test, train"):
        BUILTIN_TASKS["gsm8k"].load("dev")


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(ROWS["number"][0]) + "\n\n" + '{"id": "x", "question": \n', encoding="utf-8")
    with pytest.raises(LatentReasonError, match=r"test\.jsonl.*line 3: not valid JSON") as info:
        BUILTIN_TASKS["gsm8k"].load(source=path)
    assert "\n" not in str(info.value)


def test_missing_and_ill_typed_fields_are_all_reported(tmp_path: Path) -> None:
    rows = [
        {"id": "ok", "question": "fine", "answer": "1"},
        {"id": "a", "answer": "1"},
        {"id": "b", "question": "q", "answer": ["1"]},
        ["not", "an", "object"],
        {"id": "d", "question": "q", "answer": "1", "meta": "oops"},
    ]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(LatentReasonError) as info:
        BUILTIN_TASKS["gsm8k"].load(source=path)
    message = str(info.value)
    assert "4 invalid row(s)" in message and "bad.jsonl" in message
    assert "line 2: missing field 'question'" in message
    assert "line 3: field 'answer' must be a string, not a list" in message
    assert "line 4: expected a JSON object" in message
    assert "line 5: field 'meta' must be an object" in message


def test_many_problems_are_capped(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"id": str(i)} for i in range(12)])
    with pytest.raises(LatentReasonError, match=r"12 invalid row\(s\)") as info:
        BUILTIN_TASKS["gsm8k"].load(source=path)
    message = str(info.value)
    assert "line 1: missing field 'question', missing field 'answer'; line 2:" in message
    assert "line 5:" in message and "line 6:" not in message and "(and 7 more)" in message


@pytest.mark.parametrize(
    ("name", "row", "problem"),
    [
        ("aqua", {"id": "1", "question": "q", "answer": "B"}, "missing field 'choices'"),
        (
            "aqua",
            {"id": "1", "question": "q", "choices": ["A) 1", "B) 2"], "answer": "C"},
            "answer 'C' is not one of the option letters A, B",
        ),
        (
            "aqua",
            {"id": "1", "question": "q", "choices": "A) 1", "answer": "A"},
            "field 'choices' must be a list of non-empty strings, not a string.",
        ),
        ("strategyqa", {"id": "1", "question": "q", "answer": "Maybe"}, "answer 'Maybe' is not Yes or No"),
        ("gsm8k", {"id": "1", "question": "", "answer": "3"}, "field 'question' is empty"),
        ("gsm8k", {"id": "1", "question": "q", "answer": True}, "field 'answer' must be a string, not a boolean"),
        (
            "gsm8k",
            {"id": "1", "question": "q", "answer": "3", "rationale": 5},
            "field 'rationale' must be a string, not a number",
        ),
    ],
)
def test_answer_type_checks(name: str, row: dict[str, Any], problem: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "test.jsonl", [row])
    with pytest.raises(LatentReasonError, match=re.escape(f"line 1: {problem}")):
        BUILTIN_TASKS[name].load(source=path)


def test_rows_are_normalised(tmp_path: Path) -> None:
    rows = [
        {"id": 7, "question": "q", "choices": ["1", "2", "3"], "answer": "b"},
        {"id": "8", "question": "q", "choices": ["A)1", "B)2"], "answer": "A"},
    ]
    first, second = BUILTIN_TASKS["aqua"].load(source=write_jsonl(tmp_path / "t.jsonl", rows))
    assert first.id == "7" and first.choices == ("A) 1", "B) 2", "C) 3") and first.answer == "B"
    assert second.choices == ("A) 1", "B) 2")
    yes = BUILTIN_TASKS["strategyqa"].load(
        source=write_jsonl(tmp_path / "y.jsonl", [{"id": "1", "question": "q", "answer": True}])
    )
    assert yes[0].answer == "Yes"


def test_missing_file_and_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(LatentReasonError, match="does not exist"):
        BUILTIN_TASKS["gsm8k"].load(source=str(tmp_path / "nowhere" / "test.jsonl"))
    write_jsonl(tmp_path / "train.jsonl", ROWS["number"])
    with pytest.raises(LatentReasonError, match=r"has no test\.jsonl.*It has the splits: train"):
        BUILTIN_TASKS["gsm8k"].load("test", source=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LatentReasonError, match=r"holds no \.jsonl files"):
        BUILTIN_TASKS["gsm8k"].load(source=empty)


def test_empty_data_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "date_understanding").mkdir()
    (tmp_path / "date_understanding" / "test.jsonl").write_text("", encoding="utf-8")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(LatentReasonError, match="no examples in file"):
        BUILTIN_TASKS["date_understanding"].load("test")
    with pytest.raises(LatentReasonError, match=r"Offset 295 is past the end .* which has 295 examples"):
        BUILTIN_TASKS["date_understanding"].load(offset=295)
    with pytest.raises(LatentReasonError, match="limit must be positive"):
        BUILTIN_TASKS["date_understanding"].load(limit=0)


def test_hub_id_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    go_offline(monkeypatch)
    started = time.monotonic()
    with pytest.raises(LatentReasonError, match=r"Could not reach the Hugging Face hub.*openai/gsm8k.*local \.jsonl"):
        BUILTIN_TASKS["gsm8k"].load(source="openai/gsm8k")
    assert time.monotonic() - started < 30


def test_unshipped_task_falls_back_to_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    go_offline(monkeypatch)
    with pytest.raises(LatentReasonError, match=r"EleutherAI/asdiv.*\$LATENTREASON_DATA_DIR \(not set\)"):
        BUILTIN_TASKS["asdiv"].load()


class FakeHub:
    """Stands in for ``datasets.load_dataset``, serving in-memory rows."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.calls: list[tuple[str, str | None, str]] = []

    def __call__(self, path: str, name: str | None = None, *, split: str) -> Any:
        import datasets

        self.calls.append((path, name, split))
        return datasets.Dataset.from_list(self.rows)


def test_hub_rows_go_through_the_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    rows = [{"question": f"Q{i}?", "answer": f"Step {i}.\n#### 1,00{i}"} for i in range(5)]
    fake = FakeHub(rows)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    examples = BUILTIN_TASKS["gsm8k"].load("test", source="openai/gsm8k", limit=2, offset=1)
    assert fake.calls == [("openai/gsm8k", "main", "test")]
    assert [(ex.id, ex.question, ex.answer, ex.rationale) for ex in examples] == [
        ("gsm8k-test-1", "Q1?", "1001", "Step 1."),
        ("gsm8k-test-2", "Q2?", "1002", "Step 2."),
    ]


def test_hub_rows_in_our_schema_need_no_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    fake = FakeHub(ROWS["yesno"])
    monkeypatch.setattr(datasets, "load_dataset", fake)
    examples = BUILTIN_TASKS["strategyqa"].load("test", source="someone/my-strategyqa:v2")
    assert fake.calls == [("someone/my-strategyqa", "v2", "test")]
    assert [ex.answer for ex in examples] == ["Yes", "No"]


def test_hub_rows_that_cannot_be_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", FakeHub([{"question": "q", "answer": "no hashes"}]))
    with pytest.raises(LatentReasonError, match=r"row 0: cannot convert .*'####'"):
        BUILTIN_TASKS["gsm8k"].load(source="openai/gsm8k")
    monkeypatch.setattr(datasets, "load_dataset", FakeHub([{"text": "hello"}]))
    with pytest.raises(LatentReasonError, match=r"row 0: cannot convert \(KeyError: 'Body'\)\. Its columns are: text"):
        BUILTIN_TASKS["svamp"].load(source="someone/else")
    plain = TaskSpec("plain", "d", "number", "number", "i", eval_split="test", train_split=None)
    with pytest.raises(LatentReasonError, match=r"do not follow the project's schema \(columns: text\)"):
        plain.load(source="someone/else")


@pytest.mark.parametrize(
    ("name", "row", "expected"),
    [
        (
            "aqua",
            {"question": "Q", "options": ["A)125", "B)150"], "rationale": "R\nAnswer is A.", "correct": "A"},
            {"answer": "A", "choices": ("A) 125", "B) 150"), "rationale": "R\nAnswer is A."},
        ),
        (
            "strategyqa",
            {"qid": "abc", "question": "Q?", "answer": False, "facts": ["F1.", "F2."]},
            {"id": "abc", "answer": "No", "rationale": "F1. F2."},
        ),
        (
            "svamp",
            {"ID": "chal-1", "Body": "Body.", "Question": "How many?", "Answer": 51.0, "Equation": "x", "Type": "t"},
            {"id": "chal-1", "question": "Body. How many?", "answer": "51"},
        ),
        ("multiarith", {"question": " Q ", "final_ans": "12"}, {"question": "Q", "answer": "12"}),
        (
            "asdiv",
            {"body": "B.", "question": "Q?", "answer": "9 (apples)", "formula": "4+5=9", "solution_type": "Sum"},
            {"question": "B. Q?", "answer": "9"},
        ),
        ("asdiv_aug", {"question": "q", "answer": "<<8+8=16>>\n#### 16"}, {"answer": "16", "rationale": "<<8+8=16>>"}),
        (
            "mathqa_bigbench",
            {"inputs": "Q: what ?\nA:", "multiple_choice_targets": ["1", "2"], "multiple_choice_scores": [0, 1]},
            {"question": "what ?", "answer": "B", "choices": ("A) 1", "B) 2")},
        ),
    ],
)
def test_hub_converters(name: str, row: dict[str, Any], expected: dict[str, Any]) -> None:
    hub = BUILTIN_TASKS[name].hub
    assert hub is not None and hub.convert is not None
    example = hub.convert(row, f"{name}-test-0")
    for key, value in expected.items():
        assert getattr(example, key) == value
    assert parse_number(example.answer) is not None or BUILTIN_TASKS[name].answer_type != "number"


def test_date_converter_shuffles_deterministically() -> None:
    hub = BUILTIN_TASKS["date_understanding"].hub
    assert hub is not None and hub.convert is not None
    row = {
        "inputs": "Today is 01/02/2020. What is tomorrow?",
        "multiple_choice_targets": ["01/03/2020", "01/04/2020", "01/05/2020", "01/06/2020", "01/07/2020"],
        "multiple_choice_scores": [1, 0, 0, 0, 0],
    }
    first = hub.convert(row, "date_understanding-train-0")
    assert first == hub.convert(row, "date_understanding-train-0")
    assert f"{first.answer}) 01/03/2020" in first.choices
    letters = {hub.convert(row, f"date_understanding-train-{i}").answer for i in range(20)}
    assert len(letters) > 1
