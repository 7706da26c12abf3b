"""The plugin contract, checked where plugins meet the core.

:func:`hook_problems` finds hook functions pluggy would ignore (not marked
``@hookimpl``, or named after no hook); :func:`component_problems` checks a
registered component against its kind's base class (its ``Options``, their
defaults, the methods it must implement and names that look like misspelled
methods of the interface); :func:`blame` re-raises what a component raises
with its kind, name and plugin. The interfaces are read from the base
classes and :mod:`latentreason.hooks.specs` themselves, so a method or hook
added there is known here at once.
"""

from __future__ import annotations

import difflib
import inspect
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import is_dataclass
from typing import Any

import pluggy
from pydantic import ValidationError

from latentreason.components.decoder import DecodingController
from latentreason.components.evaluator import Evaluator
from latentreason.components.injector import Injector
from latentreason.components.producer import ThoughtProducer
from latentreason.components.projector import Projector
from latentreason.components.task import TaskSpec
from latentreason.config import PluginOptions
from latentreason.errors import ComponentError, LatentReasonError, PluginFailure
from latentreason.hooks import specs

BASES: dict[str, type] = {
    "producer": ThoughtProducer,
    "projector": Projector,
    "injector": Injector,
    "evaluator": Evaluator,
    "decoder": DecodingController,
    "task": TaskSpec,
}
"""Each component kind's base class, whose public attributes are the kind's interface."""

HOOKS = tuple(sorted(name for name in vars(specs) if name.startswith(f"{specs.PROJECT}_")))
"""The names of the hooks a plugin may implement."""


def _did_you_mean(name: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.8)
    return close[0] if close else None


def hook_problems(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hook functions of ``plugin`` that pluggy registered under no hook, or did not register.

    Args:
        manager: the manager ``plugin`` is registered with.
        plugin: a registered plugin module or object.

    Returns:
        One sentence per problem, each saying how to fix it.
    """
    registered = {caller.name for caller in manager.get_hookcallers(plugin) or []}
    problems = []
    for name in sorted(registered - set(HOOKS)):
        close = _did_you_mean(name, HOOKS)
        hint = f"did you mean {close}?" if close else f"the hooks are: {', '.join(HOOKS)}"
        problems.append(f"its hook function {name} matches no hook, so it is never called ({hint})")
    for name in sorted(dir(plugin)):
        if name.startswith(f"{specs.PROJECT}_") and name not in registered and callable(getattr(plugin, name)):
            close = name if name in HOOKS else _did_you_mean(name, HOOKS)
            hint = f" and matches no hook (did you mean {close}?)" if close != name else ""
            problems.append(
                f"its function {name} is not marked @hookimpl{hint}, so it is never called; "
                "decorate it with `@hookimpl` (from latentreason.plugin import hookimpl)"
            )
    return problems


def _describe(value: object) -> str:
    if inspect.isclass(value):
        return f"class {value.__module__}.{value.__qualname__}" + (" (a dataclass)" if is_dataclass(value) else "")
    return repr(value)


def _interface(base: type) -> set[str]:
    return {name for name in vars(base) if not name.startswith("_") and name != "Options"}


def _option_problems(options: type[PluginOptions]) -> list[str]:
    """Defaults (and ``style_defaults``) of an ``Options`` class that its own fields reject."""
    problems = []
    for label, values in {
        "default": {},
        **{f"{s!r} style default": v for s, v in options.style_defaults.items()},
    }.items():
        try:
            options.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors():
                if error["type"] != "missing":
                    field = ".".join(str(part) for part in error["loc"])
                    problems.append(f"the {label} of option {field!r} ({error['input']!r}) is invalid: {error['msg']}")
    return problems


def component_problems(kind: str, component: Any) -> list[str]:
    """What makes ``component`` unusable as a ``kind``, found without building it.

    Args:
        kind: ``producer``, ``projector``, ``injector``, ``evaluator``, ``decoder`` or ``task``.
        component: what a registration hook returned for one name.

    Returns:
        One sentence per problem, each saying how to fix it.
    """
    base = BASES[kind]
    if kind == "task":
        return [] if isinstance(component, TaskSpec) else [f"it is a {type(component).__name__}, not a TaskSpec"]
    if not (inspect.isclass(component) and issubclass(component, base)):
        return [f"it is {component!r}, not a subclass of {base.__name__} (from latentreason.plugin)"]
    problems = []
    options = getattr(component, "Options", None)
    if not (inspect.isclass(options) and issubclass(options, PluginOptions)):
        problems.append(
            f"its Options, {_describe(options)}, is not a PluginOptions subclass; declare the "
            "options as `class Options(PluginOptions)` with typed fields (from latentreason.plugin import "
            "PluginOptions; a pydantic model, so they are checked before any model loads)"
        )
    else:
        problems += _option_problems(options)
    interface = _interface(base)
    own = {
        name
        for klass in component.__mro__[: component.__mro__.index(base)]
        for name in vars(klass)
        if not name.startswith("_")
    }
    for name in sorted(getattr(component, "__abstractmethods__", ())):
        close = _did_you_mean(name, own - interface)
        hint = f" (it defines {close}: a misspelling?)" if close else ""
        problems.append(f"it does not implement {base.__name__}.{name}{hint}")
    for name in sorted(own - interface):
        close = _did_you_mean(name, interface)
        if close and close not in own and close not in getattr(component, "__abstractmethods__", ()):
            problems.append(
                f"it defines {name}, which is no part of the {base.__name__} interface, so it is never called "
                f"(did you mean {close}?)"
            )
    return problems


def _raised_in(exc: BaseException, instance: object) -> bool:
    """Whether a method of ``instance`` is on the traceback of ``exc``."""
    return any(frame.f_locals.get("self") is instance for frame, _ in traceback.walk_tb(exc.__traceback__))


@contextmanager
def blame(kind: str, name: str, origin: str, instance: object | None = None) -> Iterator[None]:
    """Re-raise an exception from a component with its kind, name and plugin; the original is chained.

    A :class:`LatentReasonError` (something the user can fix) becomes a
    :class:`ComponentError`; anything else a :class:`PluginFailure`.

    Args:
        kind: the component's kind.
        name: its registered name.
        origin: its plugin, as :meth:`Registry.origin` words it.
        instance: blame only exceptions raised inside this object's methods
            (for a component called from code that is not its own), or None
            for all.
    """
    try:
        yield
    except (ComponentError, PluginFailure):
        raise
    except Exception as exc:
        if instance is not None and not _raised_in(exc, instance):
            raise
        where = f"{kind} {name!r} of {origin}"
        if isinstance(exc, LatentReasonError):
            raise ComponentError(f"{where}: {exc}") from exc
        raise PluginFailure(
            f"{where} raised {type(exc).__name__}: {exc}. Its traceback is above; where it points into the "
            f"plugin's code, fix the plugin or choose another {kind}."
        ) from exc
