"""Configuration: defaults, YAML, overrides and error reporting."""

from __future__ import annotations

import pytest

from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.config import RunConfig, dump_config, load_config, parse_overrides
from latentreason.errors import ConfigError, LatentReasonError


def test_defaults_describe_the_reference_run():
    config = RunConfig()
    assert config.producer.name == "softcot"
    assert config.models.assistant == "smollm2-135m-instruct"
    assert config.models.llm == "qwen2.5-coder-0.5b-instruct"
    assert config.models.trust_remote_code is False


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    config = load_config(overrides={"data": {"task": "aqua", "limit": 3}, "producer": {"name": "cot"}})
    path.write_text(dump_config(config))
    assert load_config(path) == config


def test_overrides_are_parsed_as_yaml_scalars():
    tree = parse_overrides(["generation.max_new_tokens=64", "generation.do_sample=true", "models.llm=some/model"])
    assert tree == {"generation": {"max_new_tokens": 64, "do_sample": True}, "models": {"llm": "some/model"}}


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["generation.max_new_tokens"])


def test_every_invalid_field_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("generation:\n  max_new_tokens: -5\n  batch_size: many\nmodels:\n  dtype: float8\nbogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = err.value.problems
    assert len(problems) == 4
    text = str(err.value)
    for where in ("generation.max_new_tokens", "generation.batch_size", "models.dtype", "bogus: unknown key"):
        assert where in text


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  task: gsm8k\n  limit: [1, 2\n")
    with pytest.raises(LatentReasonError, match="not valid YAML at line"):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(LatentReasonError, match="does not exist"):
        load_config("no/such/file.yaml")


@pytest.mark.plugins  # softcot's options and its projectors
def test_plugin_options_and_names_are_checked_together():
    config = load_config(
        overrides={
            "producer": {"name": "softcot", "options": {"n_thoughts": "four", "colour": "red"}},
            "projector": {"name": "lineer"},
            "data": {"task": "gsm8k"},
        }
    )
    with pytest.raises(ConfigError) as err:
        resolve(config, Registry())
    text = str(err.value)
    assert "producer.options.n_thoughts" in text
    assert "producer.options.colour: unknown key" in text
    assert "Unknown projector 'lineer'" in text
    assert len(err.value.problems) == 3


@pytest.mark.plugins  # softcot's and cot's default projectors
def test_resolve_fills_in_defaults():
    plan = resolve(load_config(overrides={"data": {"task": "strategyqa"}}), Registry())
    assert plan.projector.name == "linear"  # the softcot producer's default
    assert plan.evaluator.name == "yesno"  # the task's evaluator
    plan = resolve(load_config(overrides={"producer": {"name": "cot"}}), Registry())
    assert plan.projector.name == "identity"


def test_options_without_a_name_apply_to_the_default_component():
    config = load_config(
        overrides={"injector": {"options": {"markers": False}}, "producer": {"options": {"n_thoughts": 8}}}
    )
    assert config.injector.name == "placeholder" and config.injector.options == {"markers": False}
    assert config.producer.name == "softcot" and config.producer.options == {"n_thoughts": 8}


def test_injection_framings_are_checked_before_models_load(core_registry):
    question = {"producer": {"name": "question"}}
    config = load_config(overrides={**question, "injector": {"options": {"position": "system", "markers": "maybe"}}})
    with pytest.raises(ConfigError) as err:
        resolve(config, core_registry)
    text = str(err.value)
    assert "injector.options.position" in text and "'question', 'turn' or 'answer'" in text
    assert "injector.options.markers" in text
    plan = resolve(load_config(overrides={**question, "injector": {"options": {"position": "turn"}}}), core_registry)
    assert plan.injector.options.position == "turn" and plan.injector.options.markers is None
