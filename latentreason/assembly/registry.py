"""Plugin discovery: one fresh pluggy manager per :class:`Registry`.

There is no module-level plugin state: every ``Registry()`` builds its own
manager, so tests and notebooks never leak plugins into each other. Installed
plugins are found through the ``latentreason`` entry-point group and imported
only when a registry is first asked for something.

The task files of the folder ``$LATENTREASON_TASKS_DIR`` are registered as
the plugin ``tasks-dir``.

Which entry points load can be restricted by name, from the config or the
environment (``LATENTREASON_PLUGINS`` = allow list, ``LATENTREASON_DISABLE_PLUGINS``
= deny list, both comma-separated). A deny-list entry ``plugin:name`` drops
one component of a plugin (``builtin:gsm8k`` makes room for a plugin's own
``gsm8k``). A component that breaks the plugin contract, or whose name two
plugins register, is reported when a run asks for it (and by
``latentreason plugins``), so it does not break runs that do not use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from latentreason.builtins import plugin as builtin
from latentreason.components.task_file import TASKS_DIR_ENV, TaskFolder
from latentreason.errors import LatentReasonError, unknown_name
from latentreason.hooks import specs as hookspecs
from latentreason.hooks.contract import component_problems, hook_problems

ENTRY_POINT_GROUP = "latentreason"
ENV_ALLOW = "LATENTREASON_PLUGINS"
ENV_DENY = "LATENTREASON_DISABLE_PLUGINS"

SHIPPED = {
    **{("producer", n): "latentreason-softcot" for n in ("softcot", "softcotpp", "softcot-oracle")},
    **{("projector", n): "latentreason-softcot" for n in ("linear", "mlp")},
    **{
        ("producer", n): "latentreason-baselines"
        for n in (
            "cot",
            "no-cot",
            "pause",
            "pause-trained",
            "assist-cot",
            "coconut",
            "coconut-frozen",
            "codi",
            "answer-embedding-control",
        )
    },
    **{("decoder", n): "latentreason-lightthinker" for n in ("compress", "window", "reinject", "soft-thinking")},
}
"""Components of the plugin packages shipped with the project, so that a core-only install names what to add
(``tests/unit/assembly/test_registry.py`` checks it against what the packages register)."""

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
    problems: tuple[str, ...] = ()


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
        deny: entry-point names never loaded, and ``plugin:name`` entries
            for single components never registered (default:
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
        self._owners: dict[tuple[str, str], list[str]] = {}  # (kind, name) -> plugins registering it
        self._problems: dict[tuple[str, str], list[str]] = {}  # (kind, name) -> contract problems

    @property
    def manager(self) -> pluggy.PluginManager:
        """The pluggy manager, created and populated on first use."""
        if self._pm is None:
            if "builtin" in self._deny:
                raise LatentReasonError(
                    f"{ENV_DENY} names 'builtin', the core's own plugin (the model loader, the tasks, the evaluators, "
                    "the placeholder injector and the identity projector), which cannot be disabled as a whole. "
                    f"Disable one of its components with builtin:NAME, e.g. {ENV_DENY}=builtin:gsm8k to register "
                    "your own gsm8k task."
                )
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            pm.register(builtin, name="builtin")
            self._dists["builtin"] = "latentreason"
            if self._use_entry_points:
                self._load_entry_points(pm)
            tasks_dir = os.environ.get(TASKS_DIR_ENV, "").strip()
            if tasks_dir:
                pm.register(TaskFolder(Path(tasks_dir).expanduser()), name="tasks-dir")
                self._dists["tasks-dir"] = f"${TASKS_DIR_ENV}={tasks_dir}"
            for plugin in self._extra:
                name = getattr(plugin, "__name__", None) or type(plugin).__name__
                pm.register(plugin, name=name)
                self._dists[name] = "registered in code"
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
        """Every component of ``kind`` by name; who registers each and its contract problems are recorded."""
        if kind not in self._cache:
            hook = getattr(self.manager.hook, _KINDS[kind])
            merged: dict[str, Any] = {}
            for impl in reversed(hook.get_hookimpls()):
                for name, value in (impl.function() or {}).items():
                    if f"{impl.plugin_name}:{name}" in self._deny:
                        continue
                    self._owners.setdefault((kind, name), []).append(impl.plugin_name)
                    if name not in merged:  # a second one is a clash, reported when the name is used
                        merged[name] = value
                        self._problems[(kind, name)] = component_problems(kind, value)
            self._cache[kind] = merged
        return self._cache[kind]

    def _plugin(self, name: str) -> str:
        return f"plugin {name!r} ({self._dists.get(name, '?')})"

    def origin(self, kind: str, name: str) -> str:
        """Which plugin registers a component, in words: ``plugin 'hello' (latentreason-hello)``."""
        self._collect(kind)
        return ", ".join(self._plugin(owner) for owner in self._owners.get((kind, name), []))

    def problem(self, kind: str, name: str) -> str | None:
        """Why the component ``name`` cannot be used (a name clash, a broken contract), or None if it can."""
        self._collect(kind)
        owners = sorted(self._owners.get((kind, name), []), key=lambda owner: owner != "builtin")
        if len(owners) > 1:
            listed = " and ".join(self._plugin(owner) for owner in owners)
            return (
                f"Two plugins register the {kind} {name!r}: {listed}. Keep one: disable the other's with "
                f"{ENV_DENY}={owners[0]}:{name} (that component only) or {ENV_DENY}={owners[-1]} (a whole plugin), "
                "or uninstall it."
            )
        problems = self._problems.get((kind, name))
        if problems:
            return (
                f"{kind.capitalize()} {name!r} of {self.origin(kind, name)} breaks the plugin contract: "
                f"{'; '.join(problems)}. Fix the plugin, or leave it out with {ENV_DENY}={owners[0]}:{name}."
            )
        return None

    def hook_problems(self) -> dict[str, list[str]]:
        """Hook functions each plugin has that are never called (unmarked or misspelled), by plugin name."""
        found = {name: hook_problems(self.manager, plugin) for name, plugin in self.manager.list_name_plugin()}
        return {name: problems for name, problems in found.items() if problems}

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for a kind (``producer``, ``task``, ...)."""
        return sorted(self._collect(kind))

    def get(self, kind: str, name: str) -> Any:
        """Look a component up by kind and name.

        Raises:
            LatentReasonError: if nothing of that name is registered (the
                message lists what is available, and plugins' hook functions
                that are never called), if two plugins register it, or if it
                breaks the plugin contract.
        """
        found = self._collect(kind)
        if name in found:
            problem = self.problem(kind, name)
            if problem is not None:
                raise LatentReasonError(problem)
        else:
            error = unknown_name(kind, name, found)
            ignored = [f"{self._plugin(p)}: {'; '.join(h)}" for p, h in self.hook_problems().items()]
            if ignored:
                error = LatentReasonError(f"{error} Hooks that were never called: {' | '.join(ignored)}.")
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
        ignored = self.hook_problems()
        for name, plugin in self.manager.list_name_plugin():
            hooks = tuple(
                sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [] if caller.spec is not None)
            )
            provides = {
                kind: tuple(sorted(n for n in getattr(plugin, hook)() or {} if f"{name}:{n}" not in self._deny))
                for kind, hook in _KINDS.items()
                if hook in hooks
            }
            problems = [
                problem
                for kind, names in provides.items()
                for component in names
                if (problem := self.problem(kind, component)) is not None
            ]
            infos.append(
                PluginInfo(name, self._dists.get(name, "?"), hooks, provides, (*ignored.get(name, ()), *problems))
            )
        return infos
