"""Plugin discovery: one fresh pluggy manager per :class:`Registry`.

There is no module-level plugin state: every ``Registry()`` builds its own
manager, so tests and notebooks never leak plugins into each other. Installed
plugins are found through the ``latentreason`` entry-point group and imported
only when a registry is first asked for something.

Which entry points load can be restricted by name, from the config or the
environment (``LATENTREASON_PLUGINS`` = allow list, ``LATENTREASON_DISABLE_PLUGINS``
= deny list, both comma-separated).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from latentreason.builtins import plugin as builtin
from latentreason.errors import LatentReasonError, unknown_name
from latentreason.hooks import specs as hookspecs

ENTRY_POINT_GROUP = "latentreason"
ENV_ALLOW = "LATENTREASON_PLUGINS"
ENV_DENY = "LATENTREASON_DISABLE_PLUGINS"

SHIPPED = {
    **{("producer", n): "latentreason-softcot" for n in ("softcot", "softcotpp")},
    **{("projector", n): "latentreason-softcot" for n in ("linear", "mlp")},
    **{("producer", n): "latentreason-baselines" for n in ("cot", "pause", "pause-trained", "assist-cot", "coconut")},
    **{("decoder", n): "latentreason-lightthinker" for n in ("compress", "window", "reinject")},
}
"""Components of the plugin packages shipped with the project, so that a core-only install names what to add."""

_KINDS = {
    "producer": "latentreason_producers",
    "projector": "latentreason_projectors",
    "injector": "latentreason_injectors",
    "evaluator": "latentreason_evaluators",
    "decoder": "latentreason_decoders",
    "task": "latentreason_tasks",
}


@dataclass(frozen=True)
class PluginInfo:
    """What one registered plugin is and provides."""

    name: str
    distribution: str
    hooks: tuple[str, ...]
    provides: dict[str, tuple[str, ...]]


def _names_from_env(var: str) -> set[str] | None:
    value = os.environ.get(var, "").strip()
    return {n.strip() for n in value.split(",") if n.strip()} if value else None


class Registry:
    """Finds plugins and looks components up by name.

    Args:
        plugins: extra plugin objects or modules to register (e.g. from a test
            or a notebook), in addition to the installed ones.
        entry_points: whether to load installed plugins from entry points.
        allow: if given, only entry points with these names are loaded
            (default: ``$LATENTREASON_PLUGINS``).
        deny: entry-point names never loaded (default:
            ``$LATENTREASON_DISABLE_PLUGINS``).
    """

    def __init__(
        self,
        plugins: tuple[Any, ...] | list[Any] = (),
        *,
        entry_points: bool = True,
        allow: set[str] | None = None,
        deny: set[str] | None = None,
    ) -> None:
        self._extra = list(plugins)
        self._use_entry_points = entry_points
        self._allow = allow if allow is not None else _names_from_env(ENV_ALLOW)
        self._deny = deny if deny is not None else (_names_from_env(ENV_DENY) or set())
        self._pm: pluggy.PluginManager | None = None
        self._dists: dict[str, str] = {}
        self._cache: dict[str, dict[str, Any]] = {}

    @property
    def manager(self) -> pluggy.PluginManager:
        """The pluggy manager, created and populated on first use."""
        if self._pm is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            pm.register(builtin, name="builtin")
            self._dists["builtin"] = "latentreason"
            if self._use_entry_points:
                self._load_entry_points(pm)
            for plugin in self._extra:
                name = getattr(plugin, "__name__", None) or type(plugin).__name__
                pm.register(plugin, name=name)
                self._dists[name] = "(registered in code)"
            self._pm = pm
        return self._pm

    def _load_entry_points(self, pm: pluggy.PluginManager) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._deny or (self._allow is not None and ep.name not in self._allow):
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must name itself
                raise LatentReasonError(
                    f"Plugin {ep.name!r} ({ep.value}) failed to import: {exc}. "
                    f"Fix or uninstall it, or skip it with {ENV_DENY}={ep.name}."
                ) from exc
            pm.register(plugin, name=ep.name)
            self._dists[ep.name] = ep.dist.name if ep.dist else "?"

    def _collect(self, kind: str) -> dict[str, Any]:
        if kind not in self._cache:
            hook = getattr(self.manager.hook, _KINDS[kind])
            merged: dict[str, Any] = {}
            owner: dict[str, str] = {}
            for impl in reversed(hook.get_hookimpls()):
                for name, value in (impl.function() or {}).items():
                    if name in merged:
                        raise LatentReasonError(
                            f"Two plugins register the {kind} {name!r}: "
                            f"{owner[name]!r} and {impl.plugin_name!r}. Uninstall or disable one "
                            f"(e.g. {ENV_DENY}={impl.plugin_name})."
                        )
                    merged[name] = value
                    owner[name] = impl.plugin_name
            self._cache[kind] = merged
        return self._cache[kind]

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for a kind (``producer``, ``task``, ...)."""
        return sorted(self._collect(kind))

    def get(self, kind: str, name: str) -> Any:
        """Look a component up by kind and name.

        Raises:
            LatentReasonError: if nothing of that name is registered; the
                message lists what is available.
        """
        found = self._collect(kind)
        if name not in found:
            error = unknown_name(kind, name, found)
            package = SHIPPED.get((kind, name))
            if package is None:
                raise error
            raise LatentReasonError(
                f"{kind.capitalize()} {name!r} comes with the plugin package {package}, which is not installed "
                f"(or is disabled by ${ENV_ALLOW} / ${ENV_DENY}). Install the core with its shipped plugins from a "
                f"checkout with `pip install -r requirements.txt`, or this one with `pip install -e plugins/{package.split('-')[-1]}`. "
                f"{error}"
            )
        return found[name]

    def load_model(self, spec: Any) -> Any:
        """Load a model through the ``latentreason_load_model`` hook."""
        return self.manager.hook.latentreason_load_model(spec=spec)

    def plugins(self) -> list[PluginInfo]:
        """Describe every registered plugin and what it provides."""
        infos = []
        for name, plugin in self.manager.list_name_plugin():
            hooks = tuple(
                sorted(
                    caller.name
                    for caller in self.manager.get_hookcallers(plugin) or []
                    if caller.name.startswith("latentreason_")
                )
            )
            provides = {
                kind: tuple(sorted(getattr(plugin, hook)() or {})) for kind, hook in _KINDS.items() if hook in hooks
            }
            infos.append(PluginInfo(name, self._dists.get(name, "?"), hooks, provides))
        return infos
