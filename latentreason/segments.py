"""Where a chain of thought's segments end, for decoding controllers."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from latentreason.config import PluginOptions
from latentreason.decoding import DecodeState

_SENTENCE_END = re.compile(r"(?<!\d)[.!?][\"')\]]*\s*$|\n\s*$")
_PARAGRAPH_END = re.compile(r"\n\s*$")


class SegmentOptions(PluginOptions):
    """How the generated text is cut into segments.

    Attributes:
        segment: ``"sentence"`` (ends at ``.``, ``!``, ``?`` or a line break; not a
            decimal point), ``"paragraph"`` (a line break) or ``"tokens"`` (every
            ``tokens`` tokens).
        tokens: segment length for ``"tokens"``; for the others, the longest a
            segment may grow before it is cut anyway.
        min_tokens: no boundary before a segment has this many tokens.
    """

    segment: Literal["sentence", "paragraph", "tokens"] = "sentence"
    tokens: int = Field(48, gt=0)
    min_tokens: int = Field(4, gt=0)


def ends_segment(text: str, n_tokens: int, options: SegmentOptions) -> bool:
    """Whether a segment with this text and token count is complete."""
    if n_tokens >= options.tokens:
        return True
    if options.segment == "tokens" or n_tokens < options.min_tokens:
        return False
    pattern = _SENTENCE_END if options.segment == "sentence" else _PARAGRAPH_END
    return bool(pattern.search(text))


def at_boundary(state: DecodeState, row: int, options: SegmentOptions) -> bool:
    """Whether ``row``'s current segment ends with its latest token."""
    return ends_segment(state.segment_text(row), state.segment_tokens[row], options)


def split_segments(tokens: list[int], tokenizer, options: SegmentOptions) -> list[list[int]]:
    """Cut a token sequence (e.g. a gold rationale) into segments by the same rule as decoding."""
    segments, current = [], []
    for token in tokens:
        current.append(token)
        if ends_segment(tokenizer.decode(current, skip_special_tokens=True), len(current), options):
            segments.append(current)
            current = []
    return segments + ([current] if current else [])
