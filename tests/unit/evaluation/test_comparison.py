"""A comparison of finished cells reads them back: the same table, no model loads, nothing rewritten."""

from __future__ import annotations

import pytest

from latentreason.config import load_config
from latentreason.evaluation.comparison import compare, methods_from_names
from latentreason.models.runtime import Runtime


def _no_models(config) -> Runtime:
    """A runtime that fails the test if any model loads."""
    return Runtime(config.models, lambda spec: pytest.fail(f"model {spec.name} loaded"))


def test_a_finished_comparison_is_read_back_without_loading_a_model(runtime, core_registry, tmp_path):
    base = load_config(overrides={"data": {"limit": 3}, "generation": {"max_new_tokens": 4, "batch_size": 2}})
    registry = core_registry  # the in-test methods: question (no thoughts) and states (tests/conftest.py)
    methods = methods_from_names(base, ["question", "states"], {}, registry)
    out = tmp_path / "out"
    first = compare(methods, ["gsm8k"], [0], out, progress=False, registry=registry, runtime=runtime, log=None)
    table = (out / "comparison.md").read_text()
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.parent != out}

    again = compare(methods, ["gsm8k"], [0], out, progress=False, registry=registry, runtime=_no_models(base))

    assert [c.summary for c in again] == [c.summary for c in first] and [c.summary.n for c in again] == [3, 3]
    assert [c.records for c in again] == [c.records for c in first]
    assert (out / "comparison.md").read_text() == table
    assert {p: p.read_bytes() for p in files} == files  # no cell's summary, samples or config rewritten

    # a folder written before folders recorded their weights (no weights.json) is read back too, as a resume accepts it
    (out / "gsm8k-question-seed0" / "weights.json").unlink()
    compare(methods, ["gsm8k"], [0], out, progress=False, registry=registry, runtime=_no_models(base), log=None)
    assert not (out / "gsm8k-question-seed0" / "weights.json").exists()

    # one example more: that cell is not finished, so its models load (and the test fails on the first)
    more = methods_from_names(
        base.model_copy(update={"data": base.data.model_copy(update={"limit": 4})}), ["question"], {}, registry
    )
    with pytest.raises(pytest.fail.Exception, match="loaded"):
        compare(more, ["gsm8k"], [0], out, progress=False, registry=registry, runtime=_no_models(base), log=None)
