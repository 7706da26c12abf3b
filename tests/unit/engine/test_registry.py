"""Plugin discovery and lookup."""

from __future__ import annotations

import pytest

from latentreason import hookimpl
from latentreason.components.producer import ThoughtProducer, Thoughts
from latentreason.engine.registry import Registry
from latentreason.errors import LatentReasonError

pytestmark = pytest.mark.plugins  # these tests run the shipped producers


class _Nothing(ThoughtProducer):
    def produce(self, questions, *, instruction, training=False):
        return Thoughts()


class _Plugin:
    @hookimpl
    def latentreason_producers(self):
        return {"nothing": _Nothing}


def test_installed_plugins_register_the_reference_components():
    registry = Registry()
    assert {"softcot", "cot"} <= set(registry.names("producer"))
    assert {"identity", "linear", "mlp"} <= set(registry.names("projector"))
    assert registry.names("injector") == ["placeholder"]
    assert {"number", "choice", "yesno"} <= set(registry.names("evaluator"))
    assert {"gsm8k", "aqua", "strategyqa", "date_understanding", "asdiv", "asdiv_aug"} <= set(registry.names("task"))


def test_unknown_name_lists_what_is_available_and_suggests():
    with pytest.raises(LatentReasonError) as err:
        Registry().get("producer", "sofcot")
    message = str(err.value)
    assert "Unknown producer 'sofcot'" in message
    assert "Did you mean 'softcot'?" in message
    assert "cot" in message


def test_each_registry_is_fresh_and_extra_plugins_do_not_leak():
    with_extra = Registry([_Plugin()])
    assert "nothing" in with_extra.names("producer")
    assert "nothing" not in Registry().names("producer")


def test_two_plugins_with_the_same_name_are_reported():
    class Clash:
        @hookimpl
        def latentreason_producers(self):
            return {"cot": _Nothing}

    registry = Registry([Clash()])
    assert "cot" in registry.names("producer")  # listed; using it is the error
    with pytest.raises(LatentReasonError, match="Two plugins register the producer 'cot'"):
        registry.get("producer", "cot")


def test_deny_list_skips_an_installed_plugin(monkeypatch):
    monkeypatch.setenv("LATENTREASON_DISABLE_PLUGINS", "softcot")
    registry = Registry()
    assert "softcot" not in registry.names("producer")
    assert "cot" in registry.names("producer")


def test_allow_list_loads_only_named_plugins():
    registry = Registry(allow={"baselines"})
    assert "cot" in registry.names("producer")
    assert "softcot" not in registry.names("producer")


def test_entry_points_are_loaded_lazily():
    registry = Registry()
    assert registry._pm is None
    registry.names("task")
    assert registry._pm is not None


def test_plugins_describe_their_hooks():
    infos = {info.name: info for info in Registry().plugins()}
    assert "latentreason_producers" in infos["softcot"].hooks
    assert infos["softcot"].provides["producer"] == ("softcot", "softcot-oracle", "softcotpp")
    assert "latentreason_load_model" in infos["builtin"].hooks


def test_a_core_only_install_names_the_plugin_package_to_add(monkeypatch):
    from latentreason.config import load_config
    from latentreason.engine.resolve import resolve
    from latentreason.errors import ConfigError

    monkeypatch.setenv("LATENTREASON_DISABLE_PLUGINS", "softcot,baselines,lightthinker")
    with pytest.raises(ConfigError) as caught:
        resolve(load_config(), Registry())  # the default producer is softcot
    message = str(caught.value)
    assert "Producer 'softcot' comes with the plugin package latentreason-softcot, which is not installed" in message
    assert "pip install -r requirements.txt" in message and "Traceback" not in message


def test_shipped_names_every_component_of_the_shipped_plugin_packages():
    from latentreason.engine.registry import SHIPPED

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
