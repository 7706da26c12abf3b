"""Property tests: random configs and random dataset rows never crash with a traceback.

The only exception allowed is a :class:`LatentReasonError` with a message, and
whatever loads must be exactly what the input says (a row missing a field
never loads).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentreason.api import checkpoint_dir
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.config import RunConfig, dump_config, load_config, parse_overrides
from latentreason.errors import ConfigError, LatentReasonError

FUZZ = settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

REGISTRY = Registry()
KINDS = ("producer", "projector", "injector", "evaluator")
NAMES = {kind: REGISTRY.names(kind) for kind in (*KINDS, "task")}
OPTION_KEYS = sorted(
    {key for kind in KINDS for name in NAMES[kind] for key in REGISTRY.get(kind, name).Options.model_fields}
)
SECTION_KEYS = {
    name: sorted(field.annotation.model_fields)
    for name, field in RunConfig.model_fields.items()
    if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["float32", "auto", "cpu", "{producer}-{task}", "{x}", "{", "gsm8k", "question", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _component(kind: str):
    names = st.sampled_from([*NAMES[kind], "nowhere"]) | st.text(max_size=8)  # a core-only install has no producer
    options = st.dictionaries(st.sampled_from(OPTION_KEYS) | st.text(max_size=6), values, max_size=3)
    return st.fixed_dictionaries({"name": names}, optional={"options": options}) | values


def _section(name: str):
    keys = st.sampled_from(SECTION_KEYS[name]) | st.text(max_size=6)
    inner = st.sampled_from(NAMES["task"]) | values if name == "data" else values
    return st.dictionaries(keys, inner, max_size=4) | values


TOP_LEVEL = {
    **{name: _section(name) for name in SECTION_KEYS},
    **{kind: _component(kind) for kind in KINDS},
    "seed": values,
    "checkpoint": values,
    "output_dir": values,
    "": values,
    "bogus": values,
}
# Whole sections of random values: mostly invalid configs.
random_sections = st.lists(st.sampled_from(sorted(TOP_LEVEL)), max_size=3, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({key: TOP_LEVEL[key] for key in keys})
)


def _leaves(tree: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    return [
        p for k, v in tree.items() for p in (_leaves(v, (*prefix, k)) if isinstance(v, dict) and v else [(*prefix, k)])
    ]


LEAVES = sorted(
    set(_leaves(RunConfig().model_dump(mode="json")))
    | {(kind, "options", key) for kind in KINDS for key in OPTION_KEYS}
    | {(kind, "name") for kind in KINDS}
    | {("models", "colour"), ("bogus",)}
)
plausible = st.one_of(
    st.integers(-2, 70),
    st.integers(-(2**70), 2**70),
    st.floats(-1e3, 1e3),
    st.sampled_from(sorted({n for names in NAMES.values() for n in names} | {"float16", "question", "answer", "cpu"})),
    values,
)


def _changed(changes: list[tuple[tuple[str, ...], object]]) -> dict:
    """The complete default config with some leaves set (a section that is not a mapping becomes one)."""
    tree = RunConfig().model_dump(mode="json")
    for path, value in changes:
        node = tree
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {"projector": {"name": "linear"}, "evaluator": {"name": "number"}}.get(part, {})
            node = node[part]
        node[path[-1]] = value
    return tree


# A few leaves of the default config changed: mostly valid configs that reach resolve() and beyond.
changed_leaves = st.lists(st.tuples(st.sampled_from(LEAVES), plausible), max_size=3).map(_changed)
configs = changed_leaves | random_sections


def _allowed(exc: LatentReasonError) -> None:
    assert str(exc).strip(), f"{type(exc).__name__} without a message"
    if isinstance(exc, ConfigError):
        assert exc.problems and all(p.strip() for p in exc.problems)


@FUZZ
@given(configs)
def test_random_configs_resolve_or_fail_with_a_clear_error(overrides):
    try:
        config = load_config(overrides=overrides)
        plan = resolve(config, REGISTRY)
        folder = checkpoint_dir(config)
        torch.manual_seed(config.seed)  # as run() and train() do first
    except LatentReasonError as exc:
        _allowed(exc)
        return
    assert plan.task.name == config.data.task and str(folder)
    assert load_config(overrides=yaml.safe_load(dump_config(config))) == config  # the written config reproduces it


@FUZZ
@given(
    st.lists(
        st.text(max_size=20)
        | st.builds(
            "{}={}".format,
            st.sampled_from(
                [
                    "seed",
                    "data.limit",
                    "generation.max_new_tokens",
                    "producer.options.n_thoughts",
                    "train.checkpoint_dir",
                    "models",
                ]
            ),
            st.text(max_size=12),
        ),
        max_size=4,
    )
)
def test_random_set_options_parse_or_fail_with_a_clear_error(items):
    try:
        config = load_config(overrides=parse_overrides(items))
        plan = resolve(config, REGISTRY)
    except LatentReasonError as exc:
        _allowed(exc)
        return
    assert plan.task.name == config.data.task
    assert load_config(overrides=yaml.safe_load(dump_config(config))) == config  # the written config reproduces it


experiment_files = (
    st.fixed_dictionaries(
        {
            "methods": st.dictionaries(
                st.text(max_size=8) | st.sampled_from(["cot", "a/b", " "]), configs | values, max_size=3
            )
            | values
        },
        optional={
            "base": configs | values,
            "tasks": values | st.lists(st.sampled_from(NAMES["task"])),
            "seeds": values,
            "output": values,
            "bogus": values,
        },
    )
    | values
    | st.fixed_dictionaries(  # mostly valid: methods that each change a few leaves of the default config
        {"methods": st.dictionaries(st.sampled_from(["cot", "softcot", "x-1"]), changed_leaves, min_size=1, max_size=2)}
    )
)


@pytest.mark.plugins
@FUZZ
@given(experiment_files)
def test_random_experiment_files_load_or_fail_with_a_clear_error(tree):
    from latentreason.evaluation.experiment import load_experiment

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "experiment.yaml"
        path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
        try:
            experiment = load_experiment(path, registry=REGISTRY)
        except LatentReasonError as exc:
            _allowed(exc)
            return
    assert experiment.methods and [m.label for m in experiment.methods] == list(tree["methods"])
    assert experiment.tasks and experiment.seeds


# -- dataset rows --------------------------------------------------------------

texts = st.text(max_size=12)
ids = st.one_of(
    texts,
    st.sampled_from(["1", "2"]),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
answers = st.one_of(
    st.sampled_from(["18", "A", "b", "E", "F", "Yes", "no", "maybe", " ", "", "3.5", "-2"]),
    texts,
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
choice_lists = st.lists(
    st.sampled_from(["A) 12", "B) 24", "(C) 36", "D)48", "E) 60", "F) 1", "seven", "", " ", "A) twice"]) | texts,
    max_size=30,
)
FIELDS = {
    "id": ids,
    "question": st.one_of(texts, st.sampled_from(["What is 2 + 3?", "Is frost common?"]), st.integers(), st.none()),
    "answer": answers,
    "choices": st.one_of(choice_lists, values),
    "rationale": st.one_of(texts, values),
    "meta": st.one_of(st.dictionaries(texts, values, max_size=2), values),
}
rows = st.one_of(
    st.fixed_dictionaries({}, optional=FIELDS),
    st.fixed_dictionaries(
        {key: FIELDS[key] for key in ("id", "question", "answer")},
        optional={key: FIELDS[key] for key in ("choices", "rationale", "meta")},
    ),
    values,
)
lines = st.one_of(
    rows.map(lambda row: json.dumps(row, ensure_ascii=False)),
    st.sampled_from(
        [
            "",
            "   ",
            "{",
            "[1, 2",
            "null",
            '{"id": "1", "question": "q", "answer": "1"} trailing',
            '{"id": "\\ud800", "question": "q", "answer": "1"}',
            '{"id": 1' + "0" * 5000 + ', "question": "q", "answer": "1"}',
        ]
    ),
)


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_loaded(examples, parsed_rows, answer_type: str) -> None:
    """What loaded mirrors the rows: every row was complete and well typed, and each id is unique."""
    assert len(examples) == len(parsed_rows) > 0
    assert len({e.id for e in examples}) == len(examples)
    for example, row in zip(examples, parsed_rows):
        assert isinstance(row, dict)
        assert isinstance(row.get("id"), str) or _finite_number(row.get("id"))
        assert isinstance(row.get("question"), str) and row["question"].strip() and example.question == row["question"]
        answer = row.get("answer")
        assert (
            isinstance(answer, str) or _finite_number(answer) or (answer_type == "yesno" and isinstance(answer, bool))
        )
        assert str(example.answer).strip()
        if answer_type == "choice":
            letters = [c[0] for c in example.choices]
            assert example.answer in letters and len(set(letters)) == len(letters)
            assert len(example.choices) == len(row["choices"])
        if answer_type == "yesno":
            assert example.answer in ("Yes", "No")
        assert row.get("rationale") is None or example.rationale == row["rationale"]
        assert isinstance(row.get("meta") or {}, dict)
        for text in (example.id, example.question, example.answer, *example.choices, example.rationale or ""):
            text.encode("utf-8")  # writable to samples.jsonl and tokenizable


@pytest.mark.parametrize("task_name", ["gsm8k", "aqua", "strategyqa"])
@FUZZ
@given(data=st.lists(lines, min_size=0, max_size=5))
def test_random_dataset_rows_load_exactly_or_fail_with_a_clear_error(task_name, data):
    task = REGISTRY.get("task", task_name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.jsonl"
        path.write_text("\n".join(data) + "\n", encoding="utf-8", errors="surrogatepass")
        try:
            examples = task.load(source=path)
        except LatentReasonError as exc:
            _allowed(exc)
            return
    parsed = [json.loads(line) for line in data if line.strip()]
    _check_loaded(examples, parsed, task.answer_type)


# -- the bugs fuzzing found, pinned ------------------------------------------------


@pytest.mark.parametrize(
    "task_name, lines, problem",
    [
        (
            "gsm8k",
            ['{"id": 1' + "0" * 5000 + ', "question": "q", "answer": "1"}'],
            "line 1: not valid JSON (Exceeds the limit",
        ),
        ("gsm8k", ['{"id": "a", "question": "q", "answer": NaN}'], "field 'answer' must be a finite number, not nan"),
        ("gsm8k", ['{"id": Infinity, "question": "q", "answer": "1"}'], "field 'id' must be a finite number, not inf"),
        ("gsm8k", ['{"id": "\\ud800", "question": "q", "answer": "1"}'], "unpaired surrogate"),
        (
            "gsm8k",
            ['{"id": "a", "question": "q", "answer": "1"}', "", '{"id": "a", "question": "r", "answer": "2"}'],
            "line 3: id 'a' is already used on line 1",
        ),
        (
            "aqua",
            ['{"id": "a", "question": "q", "answer": "B", "choices": ["B) 1", "2"]}'],
            "its own letter A-Z (got B, B)",
        ),
        (
            "aqua",
            ['{"id": "a", "question": "q", "answer": "A", "choices": ' + json.dumps([str(i) for i in range(27)]) + "}"],
            "its own letter A-Z",
        ),
    ],
)
def test_rows_that_used_to_crash_or_load_wrongly_are_refused(tmp_path, task_name, lines, problem):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LatentReasonError) as err:
        REGISTRY.get("task", task_name).load(source=path)
    assert problem in str(err.value)


def test_an_id_too_large_for_a_float_is_kept_as_written(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"id": 10**400, "question": "q", "answer": 10**400}) + "\n")
    (example,) = REGISTRY.get("task", "gsm8k").load(source=path)
    assert example.id == example.answer == str(10**400)


def test_a_seed_torch_cannot_take_and_a_bad_checkpoint_dir_are_config_errors():
    with pytest.raises(ConfigError, match="seed"):
        load_config(overrides={"seed": 2**64})
    for template in ("{x}", "{", "{0}", "{producer.x}", "{producer[x]}"):
        with pytest.raises(LatentReasonError, match="train.checkpoint_dir .* is not a valid folder template"):
            checkpoint_dir(load_config(overrides={"train": {"checkpoint_dir": template}}))
