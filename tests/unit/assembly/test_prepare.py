"""The one place a run is prepared: data before models, notes from the library, the dtype decided once."""

from __future__ import annotations

import pytest
import torch

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


@pytest.mark.plugins  # the shipped codi producer
def test_untrained_parts_start_from_the_seed_alone(tiny_dirs):
    # a fresh runtime loads the LLM (peft draws the adapter's weights) inside the build; a shared one does not,
    # and the process drew other numbers in between: the untrained step map and adapter must still be the same
    llm, assistant = tiny_dirs
    config = load_config(
        overrides={
            "producer": {"name": "codi", "options": {"latent_steps": 2}},
            "adapter": {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            "models": {"llm": llm, "assistant": assistant, "device": "cpu", "dtype": "float32"},
            "data": {"limit": 1},
        }
    )

    def weights(pipeline) -> dict[str, torch.Tensor]:
        modules = pipeline.trainable()
        return {f"{n}.{k}": v.clone() for n, m in modules.items() for k, v in m.state_dict().items()}

    first = prepare(config, log=None).pipeline
    untrained = weights(first)  # the runtime's adapter is reset by the next build
    assert {"projector", "adapter"} <= {k.split(".")[0] for k in untrained}
    torch.rand(1000)
    again = weights(prepare(config, runtime=first.runtime, log=None).pipeline)
    assert again.keys() == untrained.keys() and all(torch.equal(untrained[k], v) for k, v in again.items())
    other = weights(
        prepare(config.model_copy(update={"seed": config.seed + 1}), runtime=first.runtime, log=None).pipeline
    )
    assert not all(torch.equal(untrained[k], v) for k, v in other.items())
