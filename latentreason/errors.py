"""User-facing errors.

Every problem caused by the user's input (a name, a file, a config value) is
raised as a :class:`LatentReasonError`. The CLI prints its message as one
paragraph and exits with status 2, without a traceback; library users can
catch it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LatentReasonError(Exception):
    """An error in the user's input, with a message that says how to fix it."""


class ComponentError(LatentReasonError):
    """A user error raised inside a component; the message names the component, its kind and its plugin."""


class PluginFailure(Exception):
    """A component failed with an unexpected exception (a bug of its plugin).

    The message names the component, its kind and its plugin; the original
    exception is the ``__cause__``, so its traceback stays visible.
    """


class ConfigError(LatentReasonError):
    """An invalid configuration; the message lists every problem found."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} has {len(problems)} problem(s):\n{lines}")


def unknown_name(kind: str, name: str, available: Iterable[str]) -> LatentReasonError:
    """Build the error for an unknown plugin, task or model name.

    Args:
        kind: what was looked up, e.g. ``"producer"``.
        name: the name the user gave.
        available: the names that exist.

    Returns:
        An error naming what is available and the closest match, if any.
    """
    names = sorted(available)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(names) if names else "(none installed)"
    return LatentReasonError(f"Unknown {kind} {name!r}.{hint} Available {kind}s: {listing}.")
