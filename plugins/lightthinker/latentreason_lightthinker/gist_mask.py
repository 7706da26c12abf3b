"""LightThinker's training sequence and attention mask: one teacher-forced forward that sees what decoding sees.

A gold chain of thought is cut into segments by the decoder's own rule, and
C gist tokens follow every segment but the last::

    prompt | seg 1 | gists 1 | seg 2 | gists 2 | ... | seg N

A token of segment k sees the prompt, the gists of segments before k, and its
own segment up to itself; the gists of segment k see the prompt, the earlier
gists, all of segment k and the gists before them in their group. No token
ever sees an earlier segment's own tokens: exactly what the ``compress``
decoder leaves visible when it feeds a segment's gists and then drops the
segment. Positions run over the whole sequence, as the decoder's do (dropped
entries leave gaps). The next token after a segment is predicted from the
last gist, as in decoding, where the token after the gists comes from the
last gist's hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORED = -100  # a position with nothing to predict

ATTENTION_MASKS = {"sdpa": "bool", "eager": "additive"}
"""How each attention implementation takes a 4D mask: ``sdpa`` a bool mask (True: may attend),
``eager`` an additive float mask (0 or -inf). Flash attention takes no arbitrary mask."""


@dataclass
class GistSequence:
    """One example laid out for the masked forward.

    Attributes:
        kinds: per position, 0 for the prompt, ``+k`` for segment k's tokens, ``-k`` for segment k's gists.
        tokens: per position, the token id (-1 at the prompt and at gists).
        labels: per position, the token it predicts (:data:`IGNORED` where none).
    """

    kinds: list[int]
    tokens: list[int]
    labels: list[int]


def lay_out(prompt_length: int, segments: list[list[int]], gists: int) -> GistSequence:
    """The positions of one example: its prompt, then each segment followed by ``gists`` gist tokens (none after the last).

    Args:
        prompt_length: prompt positions (thoughts included).
        segments: the gold target's segments (token ids), as the decoder cuts them.
        gists: gist tokens per segment (C).
    """
    kinds, tokens = [0] * prompt_length, [-1] * prompt_length
    for k, segment in enumerate(segments, 1):
        kinds += [k] * len(segment)
        tokens += segment
        if k < len(segments):
            kinds += [-k] * gists
            tokens += [-1] * gists
    labels = [IGNORED] * len(kinds)
    for p in range(len(kinds) - 1):
        here, after = kinds[p], kinds[p + 1]
        if after > 0 and (here == after or here == 0 or here == -(after - 1)):  # within a segment, or its first token
            labels[p] = tokens[p + 1]
    return GistSequence(kinds, tokens, labels)


def visible(kinds: torch.Tensor) -> torch.Tensor:
    """Which positions each position may attend to, ``(T, T)`` bool, for one example's ``kinds`` ``(T,)``."""
    query, key = kinds[:, None], kinds[None, :]  # (T, 1), (1, T)
    segment_of_query = query.abs()  # (T, 1): the segment a token or a gist belongs to
    causal = torch.ones(len(kinds), len(kinds), dtype=torch.bool).tril()  # (T, T)
    prompt = key == 0
    own_segment = (key > 0) & (key == segment_of_query)  # a segment's tokens, seen by themselves and their gists
    earlier_gists = (key < 0) & (key.abs() < segment_of_query)
    own_gists = (key < 0) & (query < 0) & (key == query)
    from_prompt = query == 0  # the prompt sees only the prompt
    return causal & (prompt | (~from_prompt & (own_segment | earlier_gists | own_gists)))


def attention_mask(masks: list[torch.Tensor], implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """Left-pad per-example visibility ``(T_b, T_b)`` into the 4D mask ``(B, 1, T, T)`` the attention implementation takes.

    A padding position sees only itself (so no row of the softmax is empty)
    and is seen by nobody.

    Raises:
        ValueError: an attention implementation that takes no arbitrary mask.
    """
    if implementation not in ATTENTION_MASKS:
        raise ValueError(
            f"LightThinker's attention mask needs the sdpa or eager attention implementation, not {implementation!r}"
        )
    width = max(m.shape[0] for m in masks)
    full = torch.eye(width, dtype=torch.bool).repeat(len(masks), 1, 1)  # (B, T, T): padding sees itself
    for b, m in enumerate(masks):
        full[b, width - m.shape[0] :, width - m.shape[0] :] = m
    full = full[:, None]  # (B, 1, T, T)
    if ATTENTION_MASKS[implementation] == "bool":
        return full
    return torch.zeros(full.shape, dtype=dtype).masked_fill(~full, torch.finfo(dtype).min)
