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


def at_boundary(state: DecodeState, row: int, options: SegmentOptions) -> bool:
    """Whether ``row``'s current segment ends with its latest token."""
    n = state.segment_tokens[row]
    if n >= options.tokens:
        return True
    if options.segment == "tokens" or n < options.min_tokens:
        return False
    pattern = _SENTENCE_END if options.segment == "sentence" else _PARAGRAPH_END
    return bool(pattern.search(state.segment_text(row)))
