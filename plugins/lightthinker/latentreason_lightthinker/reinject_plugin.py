"""Hook implementations of the re-injection plugin (its ``reinject`` entry point)."""

from __future__ import annotations

from latentreason.plugin import hookimpl


@hookimpl
def latentreason_decoders():
    """Register ``reinject`` (periodic hidden-state re-injection)."""
    from latentreason_lightthinker.reinject import Reinject

    return {"reinject": Reinject}
