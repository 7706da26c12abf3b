"""Hook implementations of the LightThinker plugin (its ``lightthinker`` entry point)."""

from __future__ import annotations

from latentreason.plugin import hookimpl


@hookimpl
def latentreason_decoders():
    """Register ``compress`` (gist compression) and ``window`` (keep the last K tokens)."""
    from latentreason_lightthinker.compress import Compress
    from latentreason_lightthinker.window import KeepLastTokens

    return {"compress": Compress, "window": KeepLastTokens}
