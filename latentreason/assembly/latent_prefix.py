"""The latent prefix: K thoughts that are the LLM's own states, written before it writes its text.

A producer that asks for it (``Thoughts(latent_steps=K)``) gets K thought
slots in the prompt, between the injector's begin/end markers, filled one at
a time: the LLM reads the prompt up to the first slot, its last hidden state
(after the final norm) goes through the step map (the run's projector:
``identity`` as Coconut, ``latent-map`` for a trainable linear map or CODI's
MLP with LayerNorm) and becomes the input embedding of the first slot; the
state it computes there becomes the second slot's input, and so on for K
steps, the keys and values of each step kept in the cache for the next.

The K vectors then stand in the prompt like any producer's thoughts, so
whatever reads the prompt reads the same computation: teacher forcing in
training (gradients of the targets' loss reach the adapter and the map
through all K steps), the transformers engine, and vLLM as prompt embeddings
(the prefix is computed here, the text after it there). Training does not
read the prompt twice: the :class:`LatentPrefix` keeps the keys, values and
hidden states the K steps computed, and :func:`continue_into` lays the
targets out after the prompts so that the teacher-forced pass starts at the
last thought (:func:`latentreason.training.trainer.llm_states`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from transformers import DynamicCache

from latentreason.components.batching import position_ids
from latentreason.components.injector import IGNORE_INDEX, LLMInputs
from latentreason.errors import LatentReasonError
from latentreason.models.spec import LoadedModel


def slot_columns(inputs: LLMInputs, steps: int) -> list[int]:
    """The columns of the ``steps`` thought slots, the same in every row of a left-padded prompt batch.

    Raises:
        LatentReasonError: the injector marks no thoughts, or not ``steps``
            consecutive columns shared by every row (a prompt with something
            of its own after the slots).
    """
    mask = inputs.thought_mask  # (B, T)
    if mask is None:
        raise LatentReasonError(
            "A latent prefix needs an injector that marks its thought slots (LLMInputs.thought_mask), "
            "such as the placeholder injector."
        )
    columns = mask[0].nonzero().flatten().tolist()
    if (
        len(columns) != steps
        or columns != list(range(columns[0], columns[0] + steps))
        or not bool((mask == mask[0]).all())
    ):
        raise LatentReasonError(
            f"A latent prefix fills {steps} consecutive thought slots at the same columns of every prompt; the "
            "injector placed them elsewhere. Put the thoughts where every prompt ends alike (the placeholder "
            "injector does, with or without markers, at any position)."
        )
    return columns


@dataclass
class LatentPrefix:
    """K latent thoughts and the LLM computation that made them.

    Attributes:
        thoughts: ``(B, K, d_llm)`` float32, the input embeddings of the K slots.
        columns: the columns computed: the prompt up to its first slot and the first K-1 slots
            (the last thought is an input no step has read yet).
        keys: per layer, the keys ``(B, heads, columns, head_dim)`` over those columns.
        values: per layer, the values, as ``keys``.
        layers: the hidden states over those columns, ``(B, columns, d_llm)`` each: the
            embedding output and every block's, the last after the final norm; empty unless
            asked for (only a pass that continues the prefix reads them).
    """

    thoughts: torch.Tensor
    columns: int
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    layers: tuple[torch.Tensor, ...]

    def cache(self) -> DynamicCache:
        """A new cache holding the prefix's keys and values (each pass after the prefix extends its own)."""
        cache = DynamicCache()
        for layer, (keys, values) in enumerate(zip(self.keys, self.values)):
            cache.update(keys, values, layer)
        return cache


def latent_prefix(
    llm: LoadedModel, prompts: LLMInputs, steps: int, step_map: nn.Module, hidden_states: bool = False
) -> LatentPrefix:
    """The K latent thoughts of each prompt, each the mapped last hidden state of the step before.

    Gradients flow (when enabled) through every step into ``step_map`` and
    any adapter inside the LLM.

    Args:
        llm: the LLM.
        prompts: left-padded prompts without targets whose ``thought_mask``
            marks ``steps`` slots (their contents are not read).
        steps: K, at least 1.
        step_map: ``(B, 1, d_llm) -> (B, 1, d_llm)``, applied to each hidden state.
        hidden_states: keep every layer's hidden states (for :func:`continue_into`).

    Returns:
        The thoughts ``(B, K, d_llm)`` and what computing them left: keys
        and values, and with ``hidden_states`` the hidden states of every
        layer, over the prompt and the first K-1 slots.
    """
    first = slot_columns(prompts, steps)[0]
    embeds, mask = prompts.inputs_embeds, prompts.attention_mask  # (B, T, d), (B, T)
    positions = position_ids(mask)  # (B, T)
    model = llm.model.base_model
    out = model(
        inputs_embeds=embeds[:, :first],
        attention_mask=mask[:, :first],
        position_ids=positions[:, :first],
        use_cache=True,
        output_hidden_states=hidden_states,
    )  # the prompt up to the first slot
    layers = [out.hidden_states] if hidden_states else []  # steps x (L+1) x (B, columns of the step, d)
    thoughts = []
    for step in range(steps):
        thought = step_map(out.last_hidden_state[:, -1:].float())  # (B, 1, d)
        thoughts.append(thought)
        if step + 1 < steps:
            column = first + step
            out = model(
                inputs_embeds=thought.to(embeds.dtype),
                attention_mask=mask[:, : column + 1],
                position_ids=positions[:, column : column + 1],
                cache=out.cache,
                use_cache=True,
                output_hidden_states=hidden_states,
            )  # last_hidden_state (B, 1, d): the state at this slot
            if hidden_states:
                layers.append(out.hidden_states)
    return LatentPrefix(
        thoughts=torch.cat(thoughts, dim=1),  # (B, K, d)
        columns=first + steps - 1,
        keys=[layer.keys for layer in out.cache.layers],
        values=[layer.values for layer in out.cache.layers],
        layers=tuple(torch.cat(per_step, dim=1) for per_step in zip(*layers)),  # (L+1) x (B, columns, d)
    )


def continue_into(prefix: LatentPrefix, inputs: LLMInputs, target_lengths: list[int]) -> LLMInputs:
    """``inputs`` (prompts with the prefix's thoughts, then targets) laid out to continue from ``prefix``.

    An injector left-pads whole rows, so targets of different lengths put
    the prompts, and their slots, at different columns. The prefix was
    computed over the prompts alone, left-padded to the longest; here every
    row's prompt ends at that same column and its targets follow,
    right-padded, so the prefix's keys and values stand for the first
    ``prefix.columns`` columns of every row.

    Args:
        prefix: the latent prefix of these rows' prompts, with its hidden states.
        inputs: the injector's rows, the prefix's thoughts in their slots.
        target_lengths: each row's target tokens (the last ones of the row).

    Returns:
        The rows, re-laid out, with ``prefix`` attached (``fixed_columns`` 0).
    """
    assert prefix.layers, "computed without hidden_states: nothing to continue from"
    mask = inputs.attention_mask  # (B, T)
    width = mask.shape[1]
    lengths = mask.sum(1)  # (B,)
    targets = torch.tensor(target_lengths, device=mask.device)  # (B,)
    prompt_width = int((lengths - targets).max())
    columns = torch.arange(prompt_width + int(targets.max()), device=mask.device)  # (W,)
    start = prompt_width - (lengths - targets)  # (B,) where each row's content starts
    inside = (columns[None] >= start[:, None]) & (columns[None] < (start + lengths)[:, None])  # (B, W)
    source = (columns[None] - start[:, None] + (width - lengths)[:, None]).clamp(0, width - 1)  # (B, W)
    embeds = inputs.inputs_embeds.gather(1, source[..., None].expand(-1, -1, inputs.inputs_embeds.shape[-1]))
    labels = inputs.labels.gather(1, source).masked_fill(~inside, IGNORE_INDEX) if inputs.labels is not None else None
    thought_mask = inputs.thought_mask.gather(1, source) & inside if inputs.thought_mask is not None else None
    k = prefix.thoughts.shape[1]
    first = prefix.columns - k + 1
    if thought_mask is None or not bool(thought_mask[:, first : first + k].all()):
        raise LatentReasonError(
            "A latent prefix continues only into rows whose thought slots are where it computed them; the "
            "injector's rows with targets place them elsewhere."
        )
    return replace(
        inputs,
        inputs_embeds=embeds * inside[..., None],  # (B, W, d), zero on padding
        attention_mask=inside.to(mask.dtype),  # (B, W)
        labels=labels,
        thought_mask=thought_mask,
        fixed_columns=0,
        prefix=prefix,
    )
