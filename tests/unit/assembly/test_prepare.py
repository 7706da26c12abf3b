"""The one place a run is prepared: data before models, notes from the library, the dtype decided once."""

from __future__ import annotations

import pytest

from latentreason.api import train
from latentreason.assembly.prepare import checked, models_note, prepare
from latentreason.config import load_config
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.models.runtime import Runtime, resolve_dtype


def _no_models(config) -> Runtime:
    """A runtime that fails the test if any model loads."""
    return Runtime(config.models, lambda spec: pytest.fail(f"model {spec.name} loaded"))


def test_a_run_reads_its_data_before_any_model_loads(tmp_path, core_registry):
    config = load_config(overrides={"producer": {"name": "question"}, "data": {"source": str(tmp_path / "none.jsonl")}})
    with pytest.raises(ConfigError, match="none.jsonl"):
        prepare(config, core_registry, _no_models(config))


def test_train_reads_its_data_before_any_model_loads(core_registry):
    config = load_config(overrides={"producer": {"name": "question"}, "train": {"split": "nope"}})
    with pytest.raises(LatentReasonError, match="nope"):
        train(config, registry=core_registry, runtime=_no_models(config), log=None)


def test_the_notes_are_the_librarys(runtime, core_registry):
    config = load_config(overrides={"producer": {"name": "question"}, "data": {"limit": 2}})
    notes: list[str] = []
    prepared = prepare(config, core_registry, runtime, log=notes.append)
    plan = prepared.pipeline.plan
    assert notes == [models_note(plan)]  # nothing untrained, no checkpoint: the dtype only
    assert [e.id for e in prepared.examples] == ["gsm8k-test-0", "gsm8k-test-1"]


def test_the_dtype_is_decided_once_with_its_reason(core_registry):
    config = load_config(overrides={"producer": {"name": "question"}, "models": {"device": "cpu"}})
    plan, _ = checked(config, core_registry)
    dtype, reason = resolve_dtype("auto", "cpu")
    assert (plan.config.models.dtype, plan.dtype_reason) == (dtype, reason)
    assert models_note(plan).startswith(f"models: {dtype} ({reason})")


@pytest.mark.plugins
def test_an_untrained_projector_is_said_by_the_library(runtime):
    config = load_config(overrides={"producer": {"name": "softcot"}, "data": {"limit": 1}})
    notes: list[str] = []
    prepare(config, runtime=runtime, log=notes.append)
    assert any(n.startswith("warning: softcot runs with untrained (randomly initialised) projector") for n in notes)
    notes.clear()
    prepare(config, runtime=runtime, default_weights=False, log=notes.append)  # as training builds it
    assert not any("untrained" in n for n in notes)
