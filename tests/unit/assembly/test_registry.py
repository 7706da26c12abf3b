"""Plugin discovery and lookup."""

from __future__ import annotations

import pytest

from latentreason import hookimpl
from latentreason.assembly.registry import Registry
from latentreason.components.producer import ThoughtProducer, Thoughts
from latentreason.errors import LatentReasonError


class _Nothing(ThoughtProducer):
    def produce(self, questions, *, instruction, training=False):
        return Thoughts()


class _Plugin:
    @hookimpl
    def latentreason_producers(self):
        return {"nothing": _Nothing}


def _core(*plugins):
    """A registry of the built-in components and ``plugins`` only (no installed plugin package)."""
    return Registry(list(plugins), entry_points=False)


def test_the_core_registers_its_built_in_components():
    registry = _core()
    assert registry.names("injector") == ["placeholder"]
    assert {"identity", "latent-map"} <= set(registry.names("projector"))
    assert {"number", "choice", "yesno"} <= set(registry.names("evaluator"))
    assert {"gsm8k", "aqua", "strategyqa", "date_understanding", "asdiv", "asdiv_aug"} <= set(registry.names("task"))
    assert registry.names("producer") == []


def test_unknown_name_lists_what_is_available_and_suggests():
    with pytest.raises(LatentReasonError) as err:
        _core(_Plugin()).get("producer", "nothin")
    message = str(err.value)
    assert "Unknown producer 'nothin'" in message
    assert "Did you mean 'nothing'?" in message


def test_each_registry_is_fresh_and_extra_plugins_do_not_leak():
    with_extra = _core(_Plugin())
    assert "nothing" in with_extra.names("producer")
    assert "nothing" not in _core().names("producer")


def test_two_plugins_with_the_same_name_are_reported():
    class Clash:
        @hookimpl
        def latentreason_producers(self):
            return {"nothing": _Nothing}

    registry = _core(_Plugin(), Clash())
    assert "nothing" in registry.names("producer")  # listed; using it is the error
    with pytest.raises(LatentReasonError, match="Two plugins register the producer 'nothing'"):
        registry.get("producer", "nothing")


def test_registries_are_populated_lazily():
    registry = _core()
    assert registry._pm is None
    registry.names("task")
    assert registry._pm is not None


@pytest.mark.plugins
def test_installed_plugins_register_the_reference_components():
    registry = Registry()
    assert {"softcot", "cot"} <= set(registry.names("producer"))
    assert {"identity", "linear", "mlp"} <= set(registry.names("projector"))


@pytest.mark.plugins
def test_deny_list_skips_an_installed_plugin(monkeypatch):
    monkeypatch.setenv("LATENTREASON_DISABLE_PLUGINS", "softcot")
    registry = Registry()
    assert "softcot" not in registry.names("producer")
    assert "cot" in registry.names("producer")


@pytest.mark.plugins
def test_allow_list_loads_only_named_plugins():
    registry = Registry(allow={"baselines"})
    assert "cot" in registry.names("producer")
    assert "softcot" not in registry.names("producer")


@pytest.mark.plugins
def test_plugins_describe_their_hooks():
    infos = {info.name: info for info in Registry().plugins()}
    assert "latentreason_producers" in infos["softcot"].hooks
    assert infos["softcot"].provides["producer"] == ("softcot", "softcot-oracle", "softcotpp")
    assert "latentreason_load_model" in infos["builtin"].hooks


@pytest.mark.plugins
def test_a_core_only_install_names_the_plugin_package_to_add(monkeypatch):
    from latentreason.assembly.resolve import resolve
    from latentreason.config import load_config
    from latentreason.errors import ConfigError

    monkeypatch.setenv("LATENTREASON_DISABLE_PLUGINS", "softcot,baselines,lightthinker")
    with pytest.raises(ConfigError) as caught:
        resolve(load_config(), Registry())  # the default producer is softcot
    message = str(caught.value)
    assert "Producer 'softcot' comes with the plugin package latentreason-softcot, which is not installed" in message
    assert "pip install -r requirements.txt" in message and "Traceback" not in message


@pytest.mark.plugins
def test_shipped_names_every_component_of_the_shipped_plugin_packages():
    from latentreason.assembly.registry import SHIPPED

    shipped = {info.distribution for info in Registry().plugins()} & set(SHIPPED.values())
    assert shipped == set(SHIPPED.values())  # every package SHIPPED names is installed here
    registered = {
        (kind, name): info.distribution
        for info in Registry().plugins()
        if info.distribution in shipped
        for kind, names in info.provides.items()
        for name in names
    }
    assert registered == SHIPPED
