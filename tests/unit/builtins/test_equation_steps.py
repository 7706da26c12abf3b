"""gsm8k-steps: GSM8K's rationales as equation steps, one per calculator annotation, on the shipped data."""

from __future__ import annotations

from latentreason.assembly.resolve import resolve
from latentreason.builtins.tasks import BUILTIN_TASKS
from latentreason.builtins.tasks.equation_steps import equation_steps, target_steps
from latentreason.config import load_config


def test_each_calculator_annotation_becomes_one_step():
    rationale = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48 + 24=72>>72 clips altogether in April and May."
    )
    assert equation_steps(rationale) == ["48/2=24", "48+24=72"]
    assert equation_steps("She has 3 apples, so 3 in all.") == []
    assert equation_steps(None) == []


def test_the_task_reads_gsm8k_with_step_rationales_and_the_same_questions():
    plain, steps = BUILTIN_TASKS["gsm8k"], BUILTIN_TASKS["gsm8k-steps"]
    original = plain.load("train", limit=40)
    converted = steps.load("train", limit=40)
    assert [(e.id, e.question, e.answer) for e in converted] == [(e.id, e.question, e.answer) for e in original]
    first = converted[0]
    assert first.rationale == "48/2=24\n48+24=72"
    assert steps.target_text(first) == "48/2=24\n48+24=72\nThe final answer is \\boxed{72}."
    assert target_steps(steps.target_text(first)) == (["48/2=24", "48+24=72"], "The final answer is \\boxed{72}.")
    for ex, before in zip(converted, original):  # every step is one of the rationale's annotations
        assert (ex.rationale or "").count("\n") + 1 == max(1, (before.rationale or "").count("<<"))
    assert [e.id for e in steps.load(limit=3)] == [e.id for e in plain.load(limit=3)]  # the same test split
    assert (steps.eval_split, steps.instruction, steps.evaluator) == (plain.eval_split, plain.instruction, "number")
    assert steps.splits() == plain.splits()


def test_a_rationale_without_annotations_trains_on_the_answer_alone():
    steps = BUILTIN_TASKS["gsm8k-steps"]
    bare = next(ex for ex in steps.load("train") if ex.rationale is None)
    assert target_steps(steps.target_text(bare)) == ([], f"The final answer is \\boxed{{{bare.answer}}}.")


def test_validation_rows_are_held_back_from_training_as_in_the_other_studies(core_registry):
    from latentreason.api import training_examples

    config = load_config(
        overrides={
            "producer": {"name": "question"},
            "data": {"task": "gsm8k-steps"},
            "train": {"limit": 8, "val_limit": 4},
        }
    )
    train, validation = training_examples(resolve(config, core_registry))  # read before any model loads
    assert [e.id for e in validation] == [f"gsm8k-train-{i}" for i in range(4)]
    assert [e.id for e in train] == [f"gsm8k-train-{i}" for i in range(4, 12)]
    assert validation[0].rationale == "48/2=24\n48+24=72"
