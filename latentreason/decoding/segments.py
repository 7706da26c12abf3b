"""Where a chain of thought's segments end, for decoding controllers.

A segment ends by a text rule (``sentence``, ``paragraph``), by length
(``tokens``), or where a trained :class:`~latentreason.decoding.trigger.BoundaryTrigger`
says so from the latest token's hidden state (``classifier``). Controllers
ask a :class:`Boundaries` built from their :class:`SegmentOptions`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from latentreason.config import PluginOptions
from latentreason.decoding.state import DecodeState
from latentreason.decoding.trigger import BoundaryTrigger
from latentreason.errors import LatentReasonError
from latentreason.models.spec import LoadedModel

_SENTENCE_END = re.compile(r"(?<!\d)[.!?][\"')\]]*\s*$|\n\s*$")
_PARAGRAPH_END = re.compile(r"\n\s*$")


class SegmentOptions(PluginOptions):
    """How the generated text is cut into segments.

    Attributes:
        segment: ``"sentence"`` (ends at ``.``, ``!``, ``?`` or a line break; not a
            decimal point), ``"paragraph"`` (a line break), ``"tokens"`` (every
            ``tokens`` tokens) or ``"classifier"`` (where the trained ``trigger``
            says so from the latest token's hidden state).
        tokens: segment length for ``"tokens"``; for the others, the longest a
            segment may grow before it is cut anyway.
        min_tokens: no boundary before a segment has this many tokens.
        trigger: the trained trigger (``.safetensors`` from ``latentreason
            train-trigger``); required for, and only for, ``"classifier"``.
        threshold: boundary when the trigger's probability is at least this;
            default: the threshold chosen in training (stored in the file).
    """

    segment: Literal["sentence", "paragraph", "tokens", "classifier"] = "sentence"
    tokens: int = Field(48, gt=0)
    min_tokens: int = Field(4, gt=0)
    trigger: str | None = None
    threshold: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _trigger_only_for_classifier(self) -> SegmentOptions:
        if self.segment == "classifier" and self.trigger is None:
            raise ValueError(
                "segment 'classifier' needs trigger: the path of a trained trigger "
                "(.safetensors from `latentreason train-trigger`)"
            )
        if self.segment != "classifier" and (self.trigger is not None or self.threshold is not None):
            raise ValueError(f"trigger and threshold are used only with segment 'classifier', not {self.segment!r}")
        if self.trigger is not None and not Path(self.trigger).expanduser().is_file():
            raise ValueError(
                f"trigger file {self.trigger!r} does not exist; train one with `latentreason train-trigger`"
            )
        return self


def ends_segment(text: str, n_tokens: int, options: SegmentOptions) -> bool:
    """Whether a segment with this text and token count is complete (the text and length rules).

    Raises:
        LatentReasonError: for ``segment: classifier``, which needs hidden
            states (use :class:`Boundaries`).
    """
    if options.segment == "classifier":
        raise LatentReasonError(
            "segment 'classifier' decides from hidden states, not text; use latentreason.decoding.segments.Boundaries."
        )
    if n_tokens >= options.tokens:
        return True
    if options.segment == "tokens" or n_tokens < options.min_tokens:
        return False
    pattern = _SENTENCE_END if options.segment == "sentence" else _PARAGRAPH_END
    return bool(pattern.search(text))


def split_segments(tokens: list[int], tokenizer, options: SegmentOptions) -> list[list[int]]:
    """Cut a token sequence (e.g. a gold rationale) into segments by the same rule as decoding."""
    segments, current = [], []
    for token in tokens:
        current.append(token)
        if ends_segment(tokenizer.decode(current, skip_special_tokens=True), len(current), options):
            segments.append(current)
            current = []
    return segments + ([current] if current else [])


def boundary_labels(tokens: list[int], tokenizer, options: SegmentOptions) -> list[int]:
    """1 for each token at which :func:`split_segments` ends a segment, else 0.

    A trailing segment that the rule does not close gets no boundary.
    """
    labels = [0] * len(tokens)
    end = 0
    for segment in split_segments(tokens, tokenizer, options):
        end += len(segment)
        labels[end - 1] = int(ends_segment(tokenizer.decode(segment, skip_special_tokens=True), len(segment), options))
    return labels


class Boundaries:
    """Answers, token by token, whether each row's current segment has ended.

    With ``segment: classifier`` the trigger is loaded once, here; a wrong or
    missing file is an error before decoding starts. ``min_tokens`` and the
    ``tokens`` cap apply to every kind.

    Args:
        options: the controller's segment options.
        llm: the LLM (its hidden size and device); used only by ``classifier``.
    """

    def __init__(self, options: SegmentOptions, llm: LoadedModel) -> None:
        self.options = options
        self.trigger: BoundaryTrigger | None = None
        self.threshold = 0.5
        self.text_rule = options
        if options.segment == "classifier":
            trigger, meta = BoundaryTrigger.load(str(options.trigger), llm.hidden_size)
            self.trigger = trigger.to(llm.model.device)
            self.threshold = options.threshold if options.threshold is not None else float(meta["threshold"])
            # Gold text has no decoding-time hidden states: cut it by the rule the trigger learned.
            self.text_rule = SegmentOptions(
                segment=meta["label"]["segment"], tokens=options.tokens, min_tokens=options.min_tokens
            )

    def ends(self, state: DecodeState, row: int) -> bool:
        """Whether ``row``'s current segment ends with its latest token."""
        n = state.segment_tokens[row]
        if self.trigger is None:
            return ends_segment(state.segment_text(row), n, self.options)
        if n >= self.options.tokens:
            return True
        if n < self.options.min_tokens:
            return False
        return float(self.trigger.probability(state.segment_hidden[row][-1])) >= self.threshold  # (d_llm,) -> ()

    def split(self, tokens: list[int], tokenizer) -> list[list[int]]:
        """Cut a gold token sequence into segments; a classifier uses the text rule its labels came from."""
        return split_segments(tokens, tokenizer, self.text_rule)
