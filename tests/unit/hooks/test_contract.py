"""The plugin contract fails loudly: each mistake a plugin author makes (issue #26's table), one by one.

Every test registers a real plugin written the wrong way and checks the
message: the plugin, the component (kind and name) and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import torch

from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.builtins.tasks import GSM8K
from latentreason.config import load_config
from latentreason.errors import ConfigError, LatentReasonError, PluginFailure
from latentreason.plugin import (
    DecodeState,
    DecodingController,
    PluginOptions,
    Projector,
    TaskSpec,
    ThoughtProducer,
    Thoughts,
    hookimpl,
)


def _plugin(kind: str, **components):
    """A plugin object named ``Mistakes`` registering ``components`` under the hook of ``kind``."""
    hook = f"latentreason_{kind}"

    def register(self):
        return components

    return type("Mistakes", (), {hook: hookimpl(register)})()


def _config(**overrides):
    return load_config(overrides={"producer": {"name": "question"}, "data": {"task": "gsm8k", "limit": 2}, **overrides})


def _problems(config, registry) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve(config, registry)
    return str(caught.value)


class _Mean(ThoughtProducer):
    """Two copies of the mean token embedding of each question: ``(B, 2, d_llm)``."""

    @property
    def thought_dim(self) -> int:
        return self.runtime.llm.hidden_size

    def produce(self, questions, *, instruction, training=False):
        llm = self.runtime.llm
        rows = [torch.tensor(llm.tokenizer(q)["input_ids"]) for q in questions]
        means = torch.stack([llm.embed(r[None].to(llm.model.device))[0].mean(0) for r in rows])  # (B, d)
        return Thoughts(vectors=means[:, None].expand(-1, 2, -1).float())  # (B, 2, d)


class _MeanPlugin:
    @hookimpl
    def latentreason_producers(self):
        return {"mean": _Mean}


@pytest.fixture()
def registry_with(core_plugin):
    """``registry_with(*plugins)``: the built-in components, the in-test producers (``question`` of
    tests/conftest.py, ``mean``) and ``plugins``; no installed plugin package."""

    def make(*plugins):
        return Registry([core_plugin, _MeanPlugin(), *plugins], entry_points=False)

    return make


def _run(runtime, registry, **overrides):
    settings = {"generation": {"max_new_tokens": 6, "stop_at_answer": False}, **overrides}
    pipeline = prepare(_config(**settings), registry, runtime).pipeline
    return pipeline.answer(pipeline.task.load(limit=2))


# -- options ------------------------------------------------------------------------------


def test_options_that_are_a_dataclass_name_the_plugin_and_the_fix(registry_with):
    class Scaled(_Mean):
        @dataclass
        class Options:
            scale: float = 1.0

    message = _problems(_config(producer={"name": "scaled"}), registry_with(_plugin("producers", scaled=Scaled)))
    assert "Producer 'scaled' of plugin 'Mistakes' (registered in code) breaks the plugin contract" in message
    assert "Scaled.Options (a dataclass), is not a PluginOptions subclass" in message
    assert "class Options(PluginOptions)" in message and "Traceback" not in message


def test_an_option_default_of_the_wrong_type_is_found_by_validate(registry_with):
    class ScaleOptions(PluginOptions):
        scale: float = "big"  # type: ignore[assignment]  # the mistake under test

    class Scaled(_Mean):
        Options = ScaleOptions

    message = _problems(_config(producer={"name": "scaled"}), registry_with(_plugin("producers", scaled=Scaled)))
    assert "Producer 'scaled' of plugin 'Mistakes'" in message
    assert "the default of option 'scale' ('big') is invalid: Input should be a valid number" in message


# -- methods ------------------------------------------------------------------------------


def test_a_misspelled_decoder_method_is_named_with_a_did_you_mean(registry_with):
    class Misspelled(DecodingController):
        def after_tokens(self, state: DecodeState, rows: list[int]) -> None:
            """Never called: the hook is after_token."""

    registry = registry_with(_plugin("decoders", late=Misspelled))
    message = _problems(_config(decoder={"name": "late"}), registry)
    assert "Decoder 'late' of plugin 'Mistakes'" in message
    assert "it defines after_tokens, which is no part of the DecodingController interface" in message
    assert "did you mean after_token?" in message


def test_the_interface_is_read_from_the_base_class(registry_with):
    class Misspelled(DecodingController):
        def trainabel(self):
            """A misspelling of another method of the interface."""

    problem = registry_with(_plugin("decoders", late=Misspelled)).problem("decoder", "late")
    assert problem is not None and "did you mean trainable?" in problem


@pytest.mark.plugins
def test_the_shipped_components_keep_the_contract():
    registry = Registry()
    for info in registry.plugins():
        assert info.problems == (), info.name
    assert registry.problem("decoder", "window") is None


def test_a_producer_without_produce_is_refused_before_models_load(registry_with):
    class Lazy(ThoughtProducer):
        def produces(self, questions, *, instruction, training=False):
            return Thoughts()

    message = _problems(_config(producer={"name": "lazy"}), registry_with(_plugin("producers", lazy=Lazy)))
    assert "Producer 'lazy' of plugin 'Mistakes'" in message
    assert "it does not implement ThoughtProducer.produce (it defines produces: a misspelling?)" in message


# -- hooks --------------------------------------------------------------------------------


class _Unmarked:
    """A plugin whose hook function lacks ``@hookimpl``."""

    def latentreason_producers(self):
        return {"averaged": _Mean}


class _MisspelledHook:
    """A plugin whose hook name has a typo."""

    @hookimpl
    def latentreason_producer(self):
        return {"averaged": _Mean}


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        (_Unmarked(), "its function latentreason_producers is not marked @hookimpl"),
        (
            _MisspelledHook(),
            "its hook function latentreason_producer matches no hook, so it is never called "
            "(did you mean latentreason_producers?)",
        ),
    ],
)
def test_hook_functions_that_are_never_called_are_reported(plugin, expected, registry_with):
    registry = registry_with(plugin)
    message = _problems(_config(producer={"name": "averaged"}), registry)
    assert "Unknown producer 'averaged'" in message
    assert f"plugin '{type(plugin).__name__}' (registered in code): {expected}" in message
    info = {i.name: i for i in registry.plugins()}[type(plugin).__name__]
    assert info.hooks == () and info.provides == {}  # a misspelled hook is not listed as one
    assert any(expected in p for p in info.problems)


# -- at run time, on tiny models ----------------------------------------------------------


def test_an_exception_inside_a_producer_names_it_and_keeps_the_original(runtime, registry_with):
    class Broken(_Mean):
        def produce(self, questions, *, instruction, training=False):
            return {}["vectors"]

    with pytest.raises(PluginFailure) as caught:
        _run(runtime, registry_with(_plugin("producers", broken=Broken)), producer={"name": "broken"})
    message = str(caught.value)
    assert message.startswith("producer 'broken' of plugin 'Mistakes' (registered in code) raised KeyError: 'vectors'")
    assert "Its traceback is above; where it points into the plugin's code, fix the plugin" in message
    assert isinstance(caught.value.__cause__, KeyError)


def test_an_exception_inside_a_decoder_names_it(runtime, registry_with):
    class Broken(DecodingController):
        def after_token(self, state, rows):
            raise ValueError("no segment yet")

    registry = registry_with(_plugin("decoders", broken=Broken))
    for continuous in (True, False):
        with pytest.raises(PluginFailure, match=r"^decoder 'broken' of plugin 'Mistakes' .*ValueError: no segment"):
            _run(
                runtime,
                registry,
                producer={"name": "question"},
                decoder={"name": "broken"},
                generation={"max_new_tokens": 4, "continuous_batching": continuous},
            )


@pytest.mark.parametrize(
    ("reshape", "expected"),
    [
        (lambda v: v[:, 0], "has shape (2, 64), expected (B*sets, N, d) = (2, N, 64)"),  # (B, d)
        (lambda v: torch.cat([v, v[:1]]), "has shape (3, 2, 64), expected (B*sets, N, d) = (2, N, 64)"),  # a row more
        (lambda v: torch.cat([v, v[..., :1]], -1), "has shape (2, 2, 65), expected (B*sets, N, d) = (2, N, 64)"),
    ],
)
def test_producer_vectors_of_the_wrong_shape(runtime, reshape, expected, registry_with):
    class Misshapen(_Mean):
        def produce(self, questions, *, instruction, training=False):
            thoughts = super().produce(questions, instruction=instruction, training=training)
            return Thoughts(vectors=reshape(thoughts.vectors))

    with pytest.raises(LatentReasonError) as caught:
        _run(runtime, registry_with(_plugin("producers", misshapen=Misshapen)), producer={"name": "misshapen"})
    message = str(caught.value)
    assert message.startswith(
        "producer 'misshapen' of plugin 'Mistakes' (registered in code): the output of producer 'misshapen'"
    )
    assert expected in message


def test_projector_output_wider_than_the_llm(runtime, registry_with):
    class Wide(Projector):
        def forward(self, thoughts):
            return torch.cat([thoughts, thoughts[..., :1]], -1)  # (B, N, d_out + 1)

    registry = registry_with(_plugin("projectors", wide=Wide))
    with pytest.raises(LatentReasonError) as caught:
        _run(runtime, registry, producer={"name": "mean"}, projector={"name": "wide"})
    assert "projector 'wide' of plugin 'Mistakes' (registered in code): the output of projector 'wide'" in str(
        caught.value
    )
    assert "has shape (2, 2, 65), expected (B*sets, N, d_llm) = (2, 2, 64)" in str(caught.value)


def test_insert_of_a_flat_vector_is_refused(runtime, registry_with):
    class Flat(DecodingController):
        def after_token(self, state, rows):
            for row in rows:
                state.insert(row, torch.zeros(state.llm.hidden_size))  # (d,) instead of (1, d)

    with pytest.raises(LatentReasonError) as caught:
        _run(
            runtime,
            registry_with(_plugin("decoders", flat=Flat)),
            producer={"name": "question"},
            decoder={"name": "flat"},
        )
    message = str(caught.value)
    assert message.startswith("decoder 'flat' of plugin 'Mistakes' (registered in code): state.insert(")
    assert "vectors has shape (64,), expected (C, d_llm) = (C, 64)" in message


# -- names --------------------------------------------------------------------------------


def _gsm8k_copy() -> TaskSpec:
    return replace(GSM8K, description="my own gsm8k")


def test_a_clash_with_a_builtin_task_names_both_and_the_way_out(registry_with):
    registry = registry_with(_plugin("tasks", gsm8k=_gsm8k_copy()))
    message = _problems(_config(producer={"name": "question"}), registry)
    assert "Two plugins register the task 'gsm8k': plugin 'builtin' (latentreason) and plugin 'Mistakes'" in message
    assert "LATENTREASON_DISABLE_PLUGINS=builtin:gsm8k (that component only)" in message


def test_a_disabled_builtin_task_is_replaced_by_the_plugin_one(monkeypatch, registry_with):
    monkeypatch.setenv("LATENTREASON_DISABLE_PLUGINS", "builtin:gsm8k")
    plan = resolve(_config(producer={"name": "question"}), registry_with(_plugin("tasks", gsm8k=_gsm8k_copy())))
    assert plan.task.description == "my own gsm8k"
    assert {i.name: i for i in registry_with().plugins()}["builtin"].provides["task"].count("gsm8k") == 0


def test_the_builtin_plugin_cannot_be_disabled_as_a_whole(monkeypatch, registry_with):
    monkeypatch.setenv("LATENTREASON_DISABLE_PLUGINS", "builtin")
    with pytest.raises(LatentReasonError, match="cannot be disabled as a whole.*builtin:gsm8k"):
        registry_with().names("task")


def test_a_clash_in_a_component_the_run_does_not_use_breaks_nothing(registry_with):
    registry = registry_with(_plugin("tasks", aqua=_gsm8k_copy()))
    assert resolve(_config(), registry).task.name == "gsm8k"
    info = {i.name: i for i in registry.plugins()}["Mistakes"]
    assert any("Two plugins register the task 'aqua'" in p for p in info.problems)
    message = _problems(_config(data={"task": "aqua", "limit": 2}), registry)
    assert "Two plugins register the task 'aqua'" in message
