"""LightThinker-style compression, training-free, with a frozen LLM.

After each segment of the chain of thought, the segment is compressed into C
*gist* vectors: its hidden states, mean-pooled into C chunks. The gists are fed
through the LLM while the segment is still visible (so their KV entries can
carry what it said), then the segment's own KV entries are dropped. Later
tokens attend to the prompt, the earlier gists and the current segment only.
"""

from __future__ import annotations

from pydantic import Field

from latentreason.decoding import DecodeState, DecodingController
from latentreason.segments import SegmentOptions, at_boundary
from latentreason_lightthinker.pooling import pool_segment


class CompressOptions(SegmentOptions):
    """Options of compression.

    Attributes:
        gist_tokens: gist vectors per segment (C).
    """

    gist_tokens: int = Field(2, gt=0)


class Compress(DecodingController):
    """Replaces each finished segment's KV entries with C gist entries."""

    Options = CompressOptions
    options: CompressOptions

    def after_token(self, state: DecodeState, rows: list[int]) -> None:
        """Compress the rows whose segment just ended."""
        norm = self.runtime.llm.embed_norm
        for row in rows:
            if at_boundary(state, row, self.options):
                state.insert(row, pool_segment(state.segment_hidden[row], self.options.gist_tokens, norm))
                state.drop(row, state.segment[row])
                state.end_segment(row)
