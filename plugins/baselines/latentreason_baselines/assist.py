"""Assist-CoT: the assistant writes hard-token hints that go into the LLM prompt."""

from __future__ import annotations

import torch
from pydantic import Field

from latentreason.plugin import (
    GenerationConfig,
    LLMInputs,
    PluginOptions,
    ThoughtProducer,
    Thoughts,
    decode,
    encode_chat,
    pad_batch,
)


class AssistOptions(PluginOptions):
    """Options of Assist-CoT.

    Attributes:
        max_hint_tokens: token budget of each hint.
        instruction: the assistant's system prompt.
    """

    max_hint_tokens: int = Field(64, gt=0)
    instruction: str = (
        "You are a helpful assistant. Another model will solve the following problem. "
        "Write a few short hints (key facts, the first step) that help it. Do not solve the problem."
    )


class AssistCoT(ThoughtProducer):
    """The assistant generates a hint per question (greedy, batched, KV-cached)."""

    Options = AssistOptions
    options: AssistOptions

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Generate one text hint per question with the assistant."""
        assistant = self.runtime.assistant
        tokenizer = assistant.tokenizer
        rows = [encode_chat(tokenizer, self.options.instruction, q)[0] for q in questions]
        device = assistant.model.device
        input_ids, attention_mask = (t.to(device) for t in pad_batch(rows, tokenizer.pad_token_id))  # (B, T), (B, T)
        with torch.no_grad():
            inputs = LLMInputs(
                inputs_embeds=assistant.embed(input_ids),  # (B, T, d_assistant)
                attention_mask=attention_mask,
                labels=None,
                prompts=[],
            )
        config = GenerationConfig(max_new_tokens=self.options.max_hint_tokens, stop_at_answer=False)
        return Thoughts(hints=[g.text.strip() for g in decode(assistant, inputs, config)])
