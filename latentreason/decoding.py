"""A KV-cached decoding loop that plugins can steer while it runs.

Plain runs use ``transformers``' ``generate()`` (see :mod:`latentreason.generation`).
A run with a *decoding controller* (``decoder`` in the config) runs this loop
instead: after every generated token the controller sees the
:class:`DecodeState` and may insert vectors into the LLM's input (they are fed
through the LLM at the next positions, so they get KV entries of their own)
and drop KV entries (they become invisible to every later token; columns that
no row can see any more are removed from the cache, so it really shrinks).

Rows of a batch advance together; a row that inserts vectors while others do
not shares the forward pass with masked padding, so batches stay batched.
Only full-attention caches (Llama, Qwen2, ...) can be rewritten; sliding-window
layers (Gemma 3) are refused.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from latentreason.config import GenerationConfig, PluginOptions
from latentreason.errors import LatentReasonError
from latentreason.generation import AnswerComplete, Generated
from latentreason.injector import LLMInputs
from latentreason.models import LoadedModel

if TYPE_CHECKING:
    from latentreason.runtime import Runtime


class DecodeState:
    """The batch being decoded: its cache, what each row can see, and its segments.

    Cache columns are shared by the batch; ``live[b, j]`` says whether row ``b``
    can attend to column ``j``.

    Attributes:
        llm: the LLM.
        tokens: generated token ids per row.
        done: which rows have stopped.
        live: ``(B, L)`` visibility of each cache column per row.
        generated: ``(B, L)`` columns holding generated tokens.
        segment: ``(B, L)`` columns of each row's current segment.
        segment_hidden: per row, last-layer hidden states ``(d,)`` of the current segment's tokens.
        segment_tokens: per row, how many tokens the current segment has.
        peak_kv: per row, most visible columns at any step.
        dependency: per row, visible columns summed over generated tokens.
    """

    def __init__(self, llm: LoadedModel, batch: int, device: torch.device) -> None:
        self.llm = llm
        self.tokens: list[list[int]] = [[] for _ in range(batch)]
        self.done = [False] * batch
        self.cache = None
        empty = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        self.live = empty
        self.generated = empty
        self.segment = empty
        self.next_position = torch.zeros(batch, dtype=torch.long, device=device)
        self.segment_hidden: list[list[torch.Tensor]] = [[] for _ in range(batch)]
        self.segment_tokens = [0] * batch
        self.peak_kv = [0] * batch
        self.dependency = [0] * batch
        self._inserts: dict[int, torch.Tensor] = {}
        self._drops: list[tuple[int, torch.Tensor, bool]] = []

    @property
    def batch(self) -> int:
        """Rows in the batch."""
        return len(self.tokens)

    def segment_text(self, row: int) -> str:
        """The text of ``row``'s current segment."""
        n = self.segment_tokens[row]
        return self.llm.tokenizer.decode(self.tokens[row][len(self.tokens[row]) - n :], skip_special_tokens=True) if n else ""

    # -- what controllers call ------------------------------------------------

    def insert(self, row: int, vectors: torch.Tensor) -> None:
        """Feed ``vectors`` ``(C, d_llm)`` to the LLM for ``row`` before its next token."""
        self._inserts[row] = vectors

    def drop(self, row: int, columns: torch.Tensor, *, before_insert: bool = False) -> None:
        """Hide cache ``columns`` (a ``(L,)`` bool mask) from ``row`` from now on.

        Args:
            row: the row.
            columns: which columns to hide.
            before_insert: hide them before this step's inserted vectors are fed
                (the vectors then cannot see them); by default after.
        """
        self._drops.append((row, columns.clone(), before_insert))

    def end_segment(self, row: int) -> None:
        """Start a new segment for ``row``."""
        self.segment[row] = False
        self.segment_hidden[row] = []
        self.segment_tokens[row] = 0

    # -- what the loop calls --------------------------------------------------

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Feed ``embeds`` ``(B, S, d)`` where ``mask`` ``(B, S)`` is set; returns hidden ``(B, S, d)``.

        Masked entries are padding: they get cache columns nobody can see.
        """
        mask = mask.bool()
        positions = self.next_position[:, None] + mask.long().cumsum(-1) - 1  # (B, S)
        attention = torch.cat([self.live, mask], dim=1)  # (B, L + S)
        out = self.llm.model.base_model(
            inputs_embeds=embeds,
            attention_mask=attention.long(),
            position_ids=positions.clamp_min(0),
            cache=self.cache,
            use_cache=True,
        )
        self.cache = out.cache
        no = torch.zeros_like(mask)
        self.live = attention
        self.generated = torch.cat([self.generated, no], dim=1)
        self.segment = torch.cat([self.segment, no], dim=1)
        self.next_position = self.next_position + mask.long().sum(-1)
        return out.last_hidden_state

    def feed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one new token per active row (``tokens`` ``(B,)``); returns hidden ``(B, d)``."""
        active = torch.tensor([not d for d in self.done], device=tokens.device)  # (B,)
        hidden = self.forward(self.llm.embed(tokens[:, None]), active[:, None])[:, -1]  # (B, d)
        column = self.live.shape[1] - 1
        for b in range(self.batch):
            if self.done[b]:
                continue
            self.generated[b, column] = True
            self.segment[b, column] = True
            self.segment_hidden[b].append(hidden[b])
            self.segment_tokens[b] += 1
            visible = int(self.live[b].sum())
            self.peak_kv[b] = max(self.peak_kv[b], visible)
            self.dependency[b] += visible
        return hidden

    def feed_forced(self, tokens: list[int]) -> torch.Tensor:
        """Teacher forcing for a batch of one: feed a whole segment of tokens at once.

        The tokens become the row's current segment, as if it had generated them.

        Returns:
            Hidden states ``(S, d)`` of the fed tokens.
        """
        ids = torch.tensor([tokens], device=self.live.device)  # (1, S)
        hidden = self.forward(self.llm.embed(ids), torch.ones_like(ids, dtype=torch.bool))[0]  # (S, d)
        self.generated[0, -len(tokens) :] = True
        self.segment[0, -len(tokens) :] = True
        self.tokens[0].extend(tokens)
        self.segment_hidden[0].extend(hidden)
        self.segment_tokens[0] += len(tokens)
        return hidden

    def apply(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the controller's inserts and drops, then compact the cache.

        Args:
            hidden: ``(B, d)`` last hidden state per row.

        Returns:
            The last hidden state per row after any inserted vectors.
        """
        for row, columns, before in self._drops:
            if before:
                self.live[row, : columns.shape[0]] &= ~columns
        if self._inserts:
            width = max(v.shape[0] for v in self._inserts.values())
            d = hidden.shape[-1]
            embeds = hidden.new_zeros(self.batch, width, d)  # (B, C, d), right-aligned
            mask = torch.zeros(self.batch, width, dtype=torch.bool, device=hidden.device)
            for row, vectors in self._inserts.items():
                embeds[row, width - vectors.shape[0] :] = vectors.to(embeds.dtype)
                mask[row, width - vectors.shape[0] :] = True
            out = self.forward(embeds, mask)  # (B, C, d)
            hidden = hidden.clone()
            for row in self._inserts:
                hidden[row] = out[row, -1]
        for row, columns, before in self._drops:
            if not before:
                self.live[row, : columns.shape[0]] &= ~columns
        self._inserts, self._drops = {}, []
        self._compact()
        return hidden

    def _compact(self) -> None:
        """Remove cache columns that no row can see."""
        keep = self.live.any(dim=0)  # (L,)
        if bool(keep.all()):
            return
        index = keep.nonzero().flatten()
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(2, index)  # (B, H, L', d_head)
            layer.values = layer.values.index_select(2, index)
        self.live = self.live[:, index]
        self.generated = self.generated[:, index]
        self.segment = self.segment[:, index]


class DecodingController:
    """Base class of decoding-time plugins (registered with ``latentreason_decoders``).

    Args:
        options: validated instance of the subclass's ``Options``.
        runtime: the models.
    """

    Options: ClassVar[type[PluginOptions]] = PluginOptions

    def __init__(self, options: PluginOptions, runtime: Runtime) -> None:
        self.options = options
        self.runtime = runtime

    def after_token(self, state: DecodeState, rows: list[int]) -> None:
        """Called after each step with the rows that generated a token; may insert and drop."""

    def trainable(self) -> nn.Module | None:
        """Trainable parameters of the controller, if any."""
        return None

    def training_loss(self, pipeline, examples: list, targets: list[list[int]]) -> torch.Tensor | None:
        """The loss to train :meth:`trainable` with, or None to use the plain supervised loss."""
        return None


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


def decode(
    llm: LoadedModel,
    inputs: LLMInputs,
    config: GenerationConfig,
    controller: DecodingController,
    answer_complete: re.Pattern[str] | None = None,
) -> list[Generated]:
    """Generate with a controller steering the KV cache (see the module docstring).

    Args:
        llm: the LLM (full-attention cache layers only).
        inputs: the left-padded prompt batch.
        config: length, sampling and stopping settings.
        controller: the decoding-time plugin.
        answer_complete: stop a row as soon as this matches its recent text.

    Returns:
        One :class:`Generated` per row, with the real peak KV and dependency.
    """
    if "sliding_attention" in (getattr(llm.model.config, "layer_types", None) or []):
        raise LatentReasonError("Decoding controllers need a full-attention model; this LLM has sliding-window layers.")
    stops = set(llm.eos_token_ids)
    checker = AnswerComplete(llm.tokenizer, answer_complete) if config.stop_at_answer and answer_complete else None
    batch = inputs.inputs_embeds.shape[0]
    device = inputs.inputs_embeds.device
    state = DecodeState(llm, batch, device)
    cap = getattr(llm.model.config, "final_logit_softcapping", None)
    with torch.no_grad():
        last = state.forward(inputs.inputs_embeds, inputs.attention_mask)[:, -1]  # (B, d)
        for _ in range(config.max_new_tokens):
            logits = llm.model.lm_head(last)  # (B, V)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            tokens = _select(logits, config)  # (B,)
            rows = [b for b in range(batch) if not state.done[b]]
            for b in rows:
                state.tokens[b].append(int(tokens[b]))
            last = state.feed_tokens(tokens)
            for b in rows:
                if int(tokens[b]) in stops or len(state.tokens[b]) >= config.max_new_tokens:
                    state.done[b] = True
            if checker is not None:
                for b, finished in zip(rows, checker.finished([state.tokens[b] for b in rows])):
                    state.done[b] = state.done[b] or finished
            if all(state.done):
                break
            controller.after_token(state, [b for b in rows if not state.done[b]])
            last = state.apply(last)
    return [
        Generated(llm.tokenizer.decode(ids, skip_special_tokens=True), ids, state.peak_kv[b], state.dependency[b])
        for b, ids in enumerate(state.tokens)
    ]
