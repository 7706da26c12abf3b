"""Periodic hidden-state re-injection.

The LLM reasons normally; at each segment boundary the hidden states of what
it wrote in that segment are pooled into R soft vectors and fed back as input.
With ``keep_text: false`` the written text is dropped first, so the input
becomes the prompt plus all soft vectors so far (the vectors do not see the
text they summarise); with ``keep_text: true`` the text stays and the vectors
are added after it.
"""

from __future__ import annotations

from pydantic import Field

from latentreason.plugin import Boundaries, DecodeState, DecodingController, SegmentOptions
from latentreason_lightthinker.pooling import pool_segment


class ReinjectOptions(SegmentOptions):
    """Options of re-injection.

    Attributes:
        vectors: soft vectors per segment (R).
        keep_text: keep the written text visible after re-injecting it.
    """

    vectors: int = Field(2, gt=0)
    keep_text: bool = False


class Reinject(DecodingController):
    """Feeds pooled segment states back as soft vectors at each boundary."""

    Options = ReinjectOptions
    options: ReinjectOptions

    def __init__(self, options: ReinjectOptions, runtime) -> None:
        super().__init__(options, runtime)
        self.boundaries = Boundaries(options, runtime.llm)

    def after_token(self, state: DecodeState, rows: list[int]) -> None:
        """Re-inject the rows whose segment just ended."""
        norm = self.runtime.llm.embed_norm
        for row in rows:
            if self.boundaries.ends(state, row):
                if not self.options.keep_text:
                    state.drop(row, state.generated[row], before_insert=True)
                state.insert(row, pool_segment(state.segment_hidden[row], self.options.vectors, norm))
                state.end_segment(row)
