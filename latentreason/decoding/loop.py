"""The KV-cached decoding loop: continuous batching, steerable by decoding controllers.

Every run decodes here (models with sliding-window layers, which the loop
cannot rewrite, fall back to ``transformers``' ``generate()`` in static
batches; see :mod:`latentreason.decoding.generate`).

**Continuous batching.** :func:`decode_stream` keeps up to ``capacity`` rows
in flight. Whenever rows finish (end of turn, a completed answer, or the
token cap), they are reported and removed from the batch, and new prompts are
read (prefilled in a batch of their own) and appended, so no slot idles until
the longest chain of a batch ends. Rows share cache columns: ``live[b, j]``
says whether row ``b`` may attend to column ``j``, and each row has its own
positions, so a row decodes exactly as it would alone (up to float rounding
of batched kernels).

**Decoding controllers.** A run with a ``decoder`` lets a controller choose,
at every step and per row, what the row reads next instead of the drawn
token's embedding (``next_input``: it sees the step's logits and last hidden
state; a soft step takes one position, like a token), and see the
:class:`DecodeState` after every generated token; it may insert vectors into
the LLM's input (they are fed through the LLM at the next positions, so they
get KV entries of their own) and drop KV entries (they become invisible to
every later token). Columns no row can see any more are removed from the
cache, so it really shrinks.

Rows advance together; a row that inserts vectors while others do not shares
the forward pass with masked padding. Only full-attention caches (Llama,
Qwen2, ...) can be rewritten; sliding-window layers (Gemma 3) are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

import torch

from latentreason.components.decoder import DecodingController
from latentreason.config import GenerationConfig
from latentreason.decoding.generate import AnswerComplete, Generated
from latentreason.decoding.state import DecodeState, supports_rewriting
from latentreason.errors import LatentReasonError
from latentreason.models.spec import LoadedModel

if TYPE_CHECKING:
    from latentreason.components.injector import LLMInputs


def _select(logits: torch.Tensor, config: GenerationConfig) -> torch.Tensor:
    """Next tokens ``(B,)`` from logits ``(B, V)``: greedy, or temperature / top-p sampling."""
    if not config.do_sample:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / config.temperature, dim=-1)  # (B, V)
    if config.top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < config.top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
    return torch.multinomial(probs, 1)[:, 0]


def _checked(chosen: tuple[torch.Tensor, int], width: int, controller: object) -> tuple[torch.Tensor, int]:
    """A controller's ``next_input`` answer, checked: a ``(d,)`` float vector and a token id."""
    vector, token = chosen
    if vector.shape != (width,) or not vector.is_floating_point():
        raise LatentReasonError(
            f"{type(controller).__name__}.next_input must return a ({width},) float vector (the LLM's hidden size) "
            f"and a token id; it returned a {tuple(vector.shape)} {vector.dtype} vector."
        )
    return vector, int(token)


K = TypeVar("K", bound=Hashable)
"""The caller's label of a row (an example and chain index, a row number)."""

Source = Callable[[int], "tuple[LLMInputs, Sequence[K]] | None"]
"""Gives prompts to admit: called with the number of free rows, returns
left-padded inputs and one key per row, or None when nothing (more) fits. An
empty batch asks with ``free == capacity``; the source must then give
something if anything is left (it may overfill), since None ends decoding."""


def decode_stream(
    llm: LoadedModel,
    source: Source[K],
    config: GenerationConfig,
    controller: DecodingController | None = None,
    answer_complete: re.Pattern[str] | None = None,
    *,
    capacity: int,
) -> Iterator[tuple[K, Generated]]:
    """Generate with continuous batching; yield each row's result as soon as it finishes.

    Args:
        llm: the LLM (full-attention cache layers only).
        source: where new prompts come from (see :data:`Source`); asked
            whenever rows are free, before every step.
        config: length, sampling and stopping settings.
        controller: a decoding-time plugin that steers the cache, or None.
        answer_complete: stop a row as soon as this matches its recent text.
        capacity: rows decoded at once (a source may overfill an empty batch).

    Yields:
        ``(key, Generated)`` per row, in the order rows finish.
    """
    if not supports_rewriting(llm):
        raise LatentReasonError("The decoding loop needs a full-attention model; this LLM has sliding-window layers.")
    stops = set(llm.eos_token_ids)
    checker = AnswerComplete(llm.tokenizer, answer_complete) if config.stop_at_answer and answer_complete else None
    state = DecodeState(llm, 0, llm.model.device)
    state.keep_hidden = controller is not None
    # the controller's per-row input hook, or None where it keeps the base class's (which chooses nothing)
    next_input = (
        controller.next_input
        if controller is not None and type(controller).next_input is not DecodingController.next_input
        else None
    )
    lm_head = llm.stepper.lm_head
    cap = getattr(llm.model.config, "final_logit_softcapping", None)
    last: torch.Tensor | None = None  # (B, d): each row's latest hidden state
    with torch.no_grad():
        while True:
            while state.batch < capacity and (admitted := source(capacity - state.batch)):
                inputs, keys = admitted
                hidden = state.admit(inputs.inputs_embeds, inputs.attention_mask, keys)  # (k, d)
                last = hidden if last is None else torch.cat([last, hidden])  # new rows come last
            if not state.batch:
                return
            logits = lm_head(last)  # (B, V)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            early = [b for b in range(state.batch) if len(state.tokens[b]) < config.min_new_tokens]
            if early:
                logits[torch.tensor(early)[:, None], torch.tensor(sorted(stops))] = float("-inf")  # no end of turn yet
            tokens = _select(logits, config).tolist()  # (B,)
            soft: dict[int, torch.Tensor] = {}
            if next_input is not None and last is not None:
                for b in range(state.batch):
                    if (chosen := next_input(state, b, logits[b], last[b])) is not None:
                        soft[b], tokens[b] = _checked(chosen, last.shape[-1], controller)
            for b, token in enumerate(tokens):
                state.tokens[b].append(token)
            last = state.feed_tokens(torch.tensor(tokens, device=logits.device), soft)  # (B, d)
            capped = [len(state.tokens[b]) >= config.max_new_tokens for b in range(state.batch)]
            answered = checker.finished(state.tokens) if checker is not None else [False] * state.batch
            for b in range(state.batch):
                state.done[b] = tokens[b] in stops or answered[b] or capped[b]
            finished = [b for b in range(state.batch) if state.done[b]]
            for b in finished:
                ids = state.tokens[b]
                truncated = capped[b] and tokens[b] not in stops and not answered[b]
                text = llm.tokenizer.decode(ids, skip_special_tokens=True)
                yield (
                    cast(K, state.keys[b]),
                    Generated(text, ids, state.peak_kv[b], state.dependency[b], truncated, state.soft_steps[b]),
                )
            if controller is not None and len(finished) < state.batch:
                controller.after_token(state, [b for b in range(state.batch) if not state.done[b]])
                last = state.apply(last)
            if finished:
                keep = [b for b in range(state.batch) if not state.done[b]]
                state.retire(finished)
                last = last[keep] if keep else None


def decode(
    llm: LoadedModel,
    inputs: LLMInputs,
    config: GenerationConfig,
    controller: DecodingController | None = None,
    answer_complete: re.Pattern[str] | None = None,
) -> list[Generated]:
    """Generate for one batch of prompts, all at once (see :func:`decode_stream`).

    Args:
        llm: the LLM (full-attention cache layers only).
        inputs: the left-padded prompt batch.
        config: length, sampling and stopping settings.
        controller: the decoding-time plugin, or None.
        answer_complete: stop a row as soon as this matches its recent text.

    Returns:
        One :class:`Generated` per row, in row order, with the real peak KV and dependency.
    """
    rows = inputs.inputs_embeds.shape[0]
    pending = [(inputs, list(range(rows)))]
    results = dict(
        decode_stream(
            llm, lambda free: pending.pop() if pending else None, config, controller, answer_complete, capacity=rows
        )
    )
    return [results[b] for b in range(rows)]
