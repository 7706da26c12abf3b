"""The state of a batch being decoded: its KV cache, what each row can see, and its segments.

Rows share cache columns: ``live[b, j]`` says whether row ``b`` may attend to
column ``j``, and each row has its own positions, so a row decodes exactly as
it would alone (up to float rounding of batched kernels). Rows join
(:meth:`DecodeState.admit`) and leave (:meth:`DecodeState.retire`) while the
others decode. Decoding controllers read this state and ask for changes
(:meth:`DecodeState.insert`, :meth:`DecodeState.drop`); only full-attention
caches (Llama, Qwen2, ...) can be rewritten (:func:`supports_rewriting`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch
from transformers.cache_utils import DynamicCache

from latentreason.components.shapes import check_shape
from latentreason.models.spec import LoadedModel

# The per-row Python lists of a DecodeState: admitting rows extends them, retiring rows filters them.
_ROW_LISTS = ("keys", "tokens", "done", "segment_hidden", "segment_tokens", "soft_steps", "peak_kv", "dependency")


class DecodeState:
    """The batch being decoded: its cache, what each row can see, and its segments.

    Cache columns are shared by the batch; ``live[b, j]`` says whether row ``b``
    can attend to column ``j``. Rows join with :meth:`admit` and leave with
    :meth:`retire`, so row indices are valid for one step.

    Attributes:
        llm: the LLM.
        keys: what each row is (the caller's label, reported with its result).
        tokens: generated token ids per row.
        done: which rows have stopped.
        live: ``(B, L)`` visibility of each cache column per row.
        generated: ``(B, L)`` columns holding generated tokens.
        segment: ``(B, L)`` columns of each row's current segment.
        segment_hidden: per row, last-layer hidden states ``(d,)`` (after the
            model's final norm: the LM head's input) of the current segment's
            generated tokens and soft steps, in order; vectors fed with
            :meth:`insert` get no entry.
        segment_tokens: per row, how many tokens the current segment has.
        soft_steps: per row, the indices (into ``tokens``) of the steps whose
            input a controller chose (see ``DecodingController.next_input``).
        peak_kv: per row, most visible columns at any step.
        dependency: per row, visible columns summed over generated tokens.
    """

    def __init__(self, llm: LoadedModel, batch: int, device: torch.device | str) -> None:
        self.llm = llm
        self.keys: list[Hashable] = list(range(batch))
        self.tokens: list[list[int]] = [[] for _ in range(batch)]
        self.done = [False] * batch
        self.cache: Any = None  # a transformers cache: one layer of keys and values per LLM layer
        empty = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        self.live = empty
        self.generated = empty
        self.segment = empty
        self.next_position = torch.zeros(batch, dtype=torch.long, device=device)
        self.segment_hidden: list[list[torch.Tensor]] = [[] for _ in range(batch)]
        self.segment_tokens = [0] * batch
        self.soft_steps: list[list[int]] = [[] for _ in range(batch)]
        self.peak_kv = [0] * batch
        self.dependency = [0] * batch
        self.keep_hidden = True  # record each token's hidden state in segment_hidden (controllers read them)
        self._inserts: dict[int, torch.Tensor] = {}
        self._drops: list[tuple[int, torch.Tensor, bool]] = []

    @property
    def batch(self) -> int:
        """Rows in the batch."""
        return len(self.tokens)

    def segment_text(self, row: int) -> str:
        """The text of ``row``'s current segment."""
        n = self.segment_tokens[row]
        return (
            self.llm.tokenizer.decode(self.tokens[row][len(self.tokens[row]) - n :], skip_special_tokens=True)
            if n
            else ""
        )

    # -- what controllers call ------------------------------------------------

    def insert(self, row: int, vectors: torch.Tensor) -> None:
        """Feed ``vectors`` ``(C, d_llm)`` to the LLM for ``row`` before its next token.

        The vectors may have any float dtype; they are cast to the dtype of
        the LLM's hidden states (``models.dtype``) when fed. They get cache
        columns and positions of their own but are not generated tokens: no
        ``tokens``, ``generated`` or ``segment_hidden`` entry.
        """
        check_shape(vectors, {"C": None, "d_llm": self.llm.hidden_size}, f"state.insert({row}, vectors): vectors")
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

    def forward(
        self, embeds: torch.Tensor, mask: torch.Tensor, *, prompt: bool = False, rows: list[int] | None = None
    ) -> torch.Tensor:
        """Feed ``embeds`` ``(R, S, d)`` where ``mask`` ``(R, S)`` is set; returns hidden ``(R, S, d)``.

        Masked entries are padding: they get cache columns nobody can see.

        Args:
            embeds: input embeddings, one row per batch row (or per entry of ``rows``).
            mask: which of them are real.
            prompt: they are prompt positions, read by the full-precision
                model even when decoding steps run an int8 twin.
            rows: feed only these batch rows (ascending); the others get the
                new columns as padding they cannot see, and cost no compute.
        """
        mask = mask.bool()
        index = None if rows is None else torch.tensor(rows, device=mask.device)
        live = self.live if index is None else self.live[index]  # (R, L)
        start = self.next_position if index is None else self.next_position[index]  # (R,)
        positions = start[:, None] + mask.long().cumsum(-1) - 1  # (R, S)
        attention = torch.cat([live, mask], dim=1)  # (R, L + S)
        model = self.llm.model if prompt else self.llm.stepper
        out = model.base_model(
            inputs_embeds=embeds,
            attention_mask=attention.long(),
            position_ids=positions.clamp_min(0),
            cache=self.cache if index is None else _cache_rows(self.cache, index),
            use_cache=True,
        )
        fed = mask.long().sum(-1)  # (R,)
        if index is None:
            self.cache, self.live = out.cache, attention
            self.next_position = self.next_position + fed
        else:
            _append_rows(self.cache, out.cache, index, mask.shape[1])
            new = torch.zeros(self.batch, mask.shape[1], dtype=torch.bool, device=mask.device)  # (B, S)
            new[index] = mask
            self.live = torch.cat([self.live, new], dim=1)
            self.next_position = self.next_position.index_add(0, index, fed)
        no = torch.zeros(self.batch, mask.shape[1], dtype=torch.bool, device=mask.device)  # (B, S)
        self.generated = torch.cat([self.generated, no], dim=1)
        self.segment = torch.cat([self.segment, no], dim=1)
        return out.last_hidden_state

    def feed_tokens(self, tokens: torch.Tensor, soft: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Feed one new token per active row; returns hidden ``(B, d)``.

        Args:
            tokens: ``(B,)`` the tokens.
            soft: ``(d,)`` input vectors fed instead of some rows' token
                embeddings (soft steps, recorded in :attr:`soft_steps`), by row.
        """
        active = torch.tensor([not d for d in self.done], device=tokens.device)  # (B,)
        embeds = self.llm.embed(tokens[:, None])  # (B, 1, d)
        for row, vector in (soft or {}).items():
            embeds[row, 0] = vector.to(embeds.dtype)
            self.soft_steps[row].append(len(self.tokens[row]) - 1)
        hidden = self.forward(embeds, active[:, None])[:, -1]  # (B, d)
        column = self.live.shape[1] - 1
        for b in range(self.batch):
            if self.done[b]:
                continue
            self.generated[b, column] = True
            self.segment[b, column] = True
            if self.keep_hidden:
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
        if self._inserts:  # only the inserting rows run: the others would be padding, computed all the same
            rows = sorted(self._inserts)
            width = max(v.shape[0] for v in self._inserts.values())
            embeds = hidden.new_zeros(len(rows), width, hidden.shape[-1])  # (R, C, d), right-aligned
            mask = torch.zeros(len(rows), width, dtype=torch.bool, device=hidden.device)  # (R, C)
            for i, row in enumerate(rows):
                vectors = self._inserts[row]
                embeds[i, width - vectors.shape[0] :] = vectors.to(embeds.dtype)
                mask[i, width - vectors.shape[0] :] = True
            out = self.forward(embeds, mask, rows=rows if len(rows) < self.batch else None)  # (R, C, d)
            hidden = hidden.clone()
            hidden[rows] = out[:, -1]
        for row, columns, before in self._drops:
            if not before:
                self.live[row, : columns.shape[0]] &= ~columns
        self._inserts, self._drops = {}, []
        self._compact()
        return hidden

    def admit(self, embeds: torch.Tensor, mask: torch.Tensor, keys: Sequence[Hashable]) -> torch.Tensor:
        """Read new prompts and append them to the batch as rows.

        The prompts are prefilled in a batch of their own (by the
        full-precision model), then their cache columns are aligned with the
        batch's on the right, padded with columns they cannot see.

        Args:
            embeds: left-padded prompt embeddings ``(k, P, d)``.
            mask: their attention mask ``(k, P)``.
            keys: one label per new row.

        Returns:
            The new rows' last hidden states ``(k, d)``.
        """
        fresh = DecodeState(self.llm, len(keys), embeds.device)
        fresh.keys = list(keys)
        fresh.keep_hidden = self.keep_hidden
        hidden = fresh.forward(embeds, mask, prompt=True)[:, -1]  # (k, d)
        if self.cache is None:  # an empty batch: the new rows are the batch
            self.__dict__.update(fresh.__dict__)
            return hidden
        width = max(self.live.shape[1], fresh.live.shape[1])
        for mine, theirs in zip(self.cache.layers, fresh.cache.layers):
            mine.keys = torch.cat(
                [_pad_columns(mine.keys, width, 2), _pad_columns(theirs.keys, width, 2)]
            )  # (B+k, H, L', d_head)
            mine.values = torch.cat([_pad_columns(mine.values, width, 2), _pad_columns(theirs.values, width, 2)])
        for name in ("live", "generated", "segment"):
            setattr(
                self,
                name,
                torch.cat([_pad_columns(getattr(self, name), width, 1), _pad_columns(getattr(fresh, name), width, 1)]),
            )
        self.next_position = torch.cat([self.next_position, fresh.next_position])
        for name in _ROW_LISTS:
            getattr(self, name).extend(getattr(fresh, name))
        return hidden

    def retire(self, rows: list[int]) -> None:
        """Remove ``rows`` from the batch (their results must have been read)."""
        if not rows:
            return
        gone = set(rows)
        keep = [b for b in range(self.batch) if b not in gone]
        for name in _ROW_LISTS:
            setattr(self, name, [getattr(self, name)[b] for b in keep])
        if not keep:
            self.cache = None
            empty = self.live[:0, :0]
            self.live, self.generated, self.segment = empty, empty, empty
            self.next_position = self.next_position[:0]
            return
        index = torch.tensor(keep, device=self.live.device)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)  # (B', H, L, d_head)
            layer.values = layer.values.index_select(0, index)
        self.live, self.generated, self.segment = self.live[index], self.generated[index], self.segment[index]
        self.next_position = self.next_position[index]
        self._compact()

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


def supports_rewriting(llm: LoadedModel) -> bool:
    """Whether the decoding loop can run this LLM: every cache layer full-attention (no sliding window)."""
    return "sliding_attention" not in (getattr(llm.model.config, "layer_types", None) or [])


def _cache_rows(cache: Any, index: torch.Tensor) -> DynamicCache:
    """A new cache holding the batch rows ``index`` of ``cache`` (copies: the model appends to it)."""
    return DynamicCache([(layer.keys[index], layer.values[index]) for layer in cache.layers])


def _append_rows(cache: Any, rows_cache: Any, index: torch.Tensor, width: int) -> None:
    """Append ``width`` columns to every layer of ``cache``: rows ``index`` get ``rows_cache``'s last ones, the rest zeros."""
    for layer, fed in zip(cache.layers, rows_cache.layers):
        for name in ("keys", "values"):
            old, new = getattr(layer, name), getattr(fed, name)[..., -width:, :]  # (B, H, L, d_head), (R, H, S, d_head)
            grown = old.new_zeros(old.shape[0], old.shape[1], old.shape[2] + width, old.shape[3])
            grown[:, :, : old.shape[2]] = old
            grown[index, :, old.shape[2] :] = new
            setattr(layer, name, grown)


def _pad_columns(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Left-pad ``tensor`` with zeros (False) along ``dim`` to ``width`` columns."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
