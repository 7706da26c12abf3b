"""A training-free compression baseline: keep only the last K generated tokens' KV."""

from __future__ import annotations

from pydantic import Field

from latentreason.plugin import DecodeState, DecodingController, PluginOptions


class WindowOptions(PluginOptions):
    """Options of the window baseline.

    Attributes:
        keep: generated tokens whose KV entries stay visible (the prompt always stays).
    """

    keep: int = Field(64, gt=0)


class KeepLastTokens(DecodingController):
    """Drops the KV entries of generated tokens older than the last ``keep``."""

    Options = WindowOptions
    options: WindowOptions

    def after_token(self, state: DecodeState, rows: list[int]) -> None:
        """Hide the oldest generated entries beyond the window."""
        for row in rows:
            visible = state.generated[row] & state.live[row]  # (L,)
            excess = int(visible.sum()) - self.options.keep
            if excess > 0:
                oldest = visible & (visible.cumsum(0) <= excess)
                state.drop(row, oldest)
