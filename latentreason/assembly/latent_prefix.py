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
training (one pass over prompt, thoughts and targets, with the gradients of
the targets' loss reaching the adapter and the map through all K steps),
the transformers engine, and vLLM as prompt embeddings (the prefix is
computed here, the text after it there).
"""

from __future__ import annotations

import torch
from torch import nn

from latentreason.components.batching import position_ids
from latentreason.components.injector import LLMInputs
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


def latent_prefix(llm: LoadedModel, prompts: LLMInputs, steps: int, step_map: nn.Module) -> torch.Tensor:
    """The K latent thoughts of each prompt, each the mapped last hidden state of the step before.

    Gradients flow (when enabled) through every step into ``step_map`` and
    any adapter inside the LLM.

    Args:
        llm: the LLM.
        prompts: left-padded prompts without targets whose ``thought_mask``
            marks ``steps`` slots (their contents are not read).
        steps: K, at least 1.
        step_map: ``(B, 1, d_llm) -> (B, 1, d_llm)``, applied to each hidden state.

    Returns:
        ``(B, K, d_llm)`` float32: the input embeddings of the K slots.
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
    )  # the prompt up to the first slot
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
            )  # last_hidden_state (B, 1, d): the state at this slot
    return torch.cat(thoughts, dim=1)  # (B, K, d)
