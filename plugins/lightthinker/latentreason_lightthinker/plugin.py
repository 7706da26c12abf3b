"""Hook implementations of the LightThinker plugin (its ``lightthinker`` entry point)."""

from __future__ import annotations

from latentreason.plugin import hookimpl


@hookimpl
def latentreason_decoders():
    """Register ``compress`` (gist compression), ``window`` (keep the last K tokens) and ``soft-thinking``."""
    from latentreason_lightthinker.compress import Compress
    from latentreason_lightthinker.soft_thinking import SoftThinking
    from latentreason_lightthinker.window import KeepLastTokens

    return {"compress": Compress, "window": KeepLastTokens, "soft-thinking": SoftThinking}
