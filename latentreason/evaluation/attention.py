"""How much the LLM looks at the thoughts while it writes.

The LLM first writes :data:`NEW_TOKENS` tokens greedily from the method's
prompt (with the thoughts it receives). One teacher-forced forward pass over
the prompt and those tokens, with eager attention so that the weights are
returned, then gives at each of the new tokens the attention mass (the sum
of the softmax weights) on the N thought positions, and on the N prompt
positions just before the first thought (with the placeholder injector's
default framing: the end of the question, the blank line and the begin
marker), the ordinary prompt tokens nearest to the thoughts. Both are means
over layers, heads and the new tokens a row wrote (up to
:data:`NEW_TOKENS`; a chain that ends earlier counts with the tokens it has).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from latentreason.components.batching import position_ids
from latentreason.components.injector import LLMInputs
from latentreason.config import GenerationConfig
from latentreason.decoding.generate import generate
from latentreason.models.spec import LoadedModel

NEW_TOKENS = 32
"""Greedy tokens the LLM writes, at which the attention is read."""

FORWARD_ROWS = 8
"""Rows per teacher-forced pass (it holds every layer's attention weights of its rows at once)."""


@dataclass
class AttentionMass:
    """Mean attention mass per new token, over layers, heads and new tokens.

    Attributes:
        thoughts: on the thought positions.
        before: on as many prompt positions just before the first thought.
        tokens: the new tokens it is averaged over, all rows together.
    """

    thoughts: float
    before: float
    tokens: int


def mass(attentions: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The attention mass each query puts on a set of keys, per head (one layer).

    Args:
        attentions: one layer's softmax weights ``(B, H, T, T)``.
        queries: ``(B, T)``, True at the query positions to read.
        keys: ``(B, T)``, True at the key positions whose weights are summed.

    Returns:
        ``(H, n)``: the mass at each of the n query positions (row-major over the batch).
    """
    on_keys = (attentions.float() * keys[:, None, None, :]).sum(-1)  # (B, H, T)
    return on_keys.transpose(0, 1)[:, queries]  # (H, n)


@contextmanager
def eager_attention(llm: LoadedModel) -> Iterator[None]:
    """Run the LLM with eager attention (which returns its weights) inside the block, then restore its kernel."""
    before = llm.model.config._attn_implementation
    llm.model.set_attn_implementation("eager")
    try:
        yield
    finally:
        llm.model.set_attn_implementation(before)


def attention_mass(llm: LoadedModel, inputs: LLMInputs) -> AttentionMass:
    """The attention mass on the thoughts of ``inputs`` (rows with ``thought_mask``) while the LLM writes.

    Raises:
        ValueError: ``inputs`` does not mark its thought positions, or a row has no thoughts.
    """
    if inputs.thought_mask is None:
        raise ValueError("the injector does not mark the thought positions (LLMInputs.thought_mask)")
    prompt_mask = inputs.attention_mask.bool()  # (B, T)
    thoughts = inputs.thought_mask.to(prompt_mask.device)  # (B, T)
    counts = thoughts.sum(-1)  # (B,)
    if not bool((counts > 0).all()):
        raise ValueError("every row needs thought positions to measure the attention on them")
    first = thoughts.long().argmax(-1)  # (B,): the first thought position of each row
    columns = torch.arange(thoughts.shape[1], device=thoughts.device)  # (T,)
    before = (columns >= (first - counts)[:, None]) & (columns < first[:, None]) & prompt_mask  # (B, T)
    chains = generate(llm, inputs, GenerationConfig(max_new_tokens=NEW_TOKENS, stop_at_answer=False))
    written = [c.token_ids[:NEW_TOKENS] for c in chains]  # at least one token each
    width = max(len(ids) for ids in written)
    pad = llm.tokenizer.pad_token_id
    device = prompt_mask.device
    new_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in written], device=device)  # (B, W)
    new_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in written], device=device)  # (B, W)
    with torch.no_grad():
        embeds = torch.cat([inputs.inputs_embeds, llm.embed(new_ids).to(inputs.inputs_embeds.dtype)], 1)  # (B, T+W, d)
    mask = torch.cat([inputs.attention_mask, new_mask.to(inputs.attention_mask.dtype)], 1)  # (B, T+W)
    queries = torch.cat([torch.zeros_like(prompt_mask), new_mask.bool()], 1)  # (B, T+W)
    widen = torch.zeros_like(new_mask, dtype=torch.bool)  # (B, W): no key among the new tokens
    keys = torch.cat([thoughts, widen], 1), torch.cat([before, widen], 1)  # (B, T+W) each
    on_thoughts, on_before = [], []
    for rows in torch.arange(len(written)).split(FORWARD_ROWS):
        with torch.no_grad(), eager_attention(llm):
            out = llm.model(
                inputs_embeds=embeds[rows],
                attention_mask=mask[rows],
                position_ids=position_ids(mask[rows]),
                output_attentions=True,
            )
        on_thoughts.append(torch.stack([mass(layer, queries[rows], keys[0][rows]) for layer in out.attentions]))
        on_before.append(torch.stack([mass(layer, queries[rows], keys[1][rows]) for layer in out.attentions]))
    # (L, H, n) each, n the new tokens of all rows
    return AttentionMass(
        torch.cat(on_thoughts, -1).mean().item(), torch.cat(on_before, -1).mean().item(), int(queries.sum())
    )
