"""``coconut-frozen``: Coconut-style continuous thoughts from the frozen LLM, training-free.

The LLM reads the prompt up to where the thoughts go (the same tokens the
placeholder injector puts before its placeholders), then for K steps its own
last hidden state becomes its next input embedding, reusing the KV cache
between steps. The K hidden states are the thoughts, injected at the
placeholder positions before the LLM writes its answer. Coconut as published
(``coconut``, :mod:`latentreason_baselines.coconut`) fine-tunes the LLM with a
curriculum; here the LLM stays frozen, so hidden states are rescaled to the
embedding norm by default (a trainable projector, ``projector.name=linear``,
can be trained on them). It has no published counterpart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from latentreason.plugin import (
    SLOT,
    PluginOptions,
    ThoughtProducer,
    Thoughts,
    encode_chat,
    marker_ids,
    pad_batch,
    position_ids,
)


class FrozenCoconutOptions(PluginOptions):
    """Options of coconut-frozen.

    Attributes:
        n_thoughts: continuous thought steps K.
        rescale: give each fed-back hidden state the LLM's mean embedding norm.
    """

    n_thoughts: int = Field(4, gt=0)
    rescale: bool = True


class FrozenCoconut(ThoughtProducer):
    """K recurrent LLM hidden states ``(B, K, d_llm)``."""

    Options = FrozenCoconutOptions
    options: FrozenCoconutOptions

    @property
    def thought_dim(self) -> int:
        """The LLM's hidden size."""
        return self.runtime.llm.hidden_size

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Run K recurrent steps of the frozen LLM on its own hidden states."""
        llm = self.runtime.llm
        tokenizer = llm.tokenizer
        markers = marker_ids(tokenizer)
        head = [markers[0]] if markers else []
        rows = []
        for q in questions:
            ids, start = encode_chat(tokenizer, instruction, f"{q}\n\n{SLOT}", head)
            rows.append(ids[: start + len(head)])  # the prompt up to the first thought
        device = llm.model.device
        input_ids, mask = (t.to(device) for t in pad_batch(rows, tokenizer.pad_token_id))  # (B, T), (B, T)
        embeds = llm.embed(input_ids)  # (B, T, d_llm)
        positions = position_ids(mask)  # (B, T)
        cache, thoughts = None, []
        with torch.no_grad():
            for _ in range(self.options.n_thoughts):
                out = llm.model.base_model(
                    inputs_embeds=embeds,
                    attention_mask=mask,
                    position_ids=positions,
                    cache=cache,
                    use_cache=True,
                )
                cache = out.cache
                state = out.last_hidden_state[:, -1:, :]  # (B, 1, d_llm)
                if self.options.rescale:
                    state = F.normalize(state, dim=-1) * llm.embed_norm
                thoughts.append(state)
                embeds = state.to(embeds.dtype)
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)  # (B, T + k)
                positions = positions[:, -1:] + 1  # (B, 1)
        return Thoughts(vectors=torch.cat(thoughts, dim=1).float())  # (B, K, d_llm)
