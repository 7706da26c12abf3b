"""The SoftCoT thought producer: one forward pass of a frozen assistant.

The assistant reads an instruction and the question in its chat format; its
turn is N placeholder tokens. Its last-layer (post-norm) hidden states at
those N positions are the soft thoughts. No tokens are generated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import Field

from latentreason.plugin import (
    PluginOptions,
    ThoughtProducer,
    Thoughts,
    encode_chat,
    pad_batch,
    placeholder_id,
    position_ids,
)

WEIGHTS = Path(__file__).parent / "weights"


class SoftCoTOptions(PluginOptions):
    """Options of the SoftCoT producer.

    Attributes:
        n_thoughts: soft thoughts at evaluation.
        n_thoughts_train: soft thoughts in training; default: ``n_thoughts``,
            so training sees the prompts evaluation sees (the reference trains
            with 32 and evaluates with 4, and its instruction names the count).
        instruction: the assistant's system prompt; ``{n}`` is filled in.
        assistant_prefix: text that opens the assistant's turn before the
            placeholders (``{n}`` is filled in), or None.
        placeholder_token: assistant token at the thought positions (default:
            an existing special token).
    """

    style_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "softcot": {
            "instruction": "You are a helpful assistant. A language model will solve the following problem after you; "
            "give it thoughts that help.",
            "assistant_prefix": "Here are {n} tokens to help the language model solve this problem:",
        }
    }

    n_thoughts: int = Field(4, gt=0)
    n_thoughts_train: int | None = Field(None, gt=0)
    instruction: str = (
        "You are a helpful assistant. Another model will solve the following problem. "
        "Think about the problem and produce {n} tokens of thoughts that help it reason to the answer."
    )
    assistant_prefix: str | None = None
    placeholder_token: str | None = None


class SoftCoTProducer(ThoughtProducer):
    """Soft thoughts ``(B, N, d_assistant)`` from the frozen assistant's hidden states."""

    Options = SoftCoTOptions
    options: SoftCoTOptions
    default_projector = "linear"

    def default_checkpoint(self) -> Path | None:
        """The projector shipped for this pair of models, if there is one (see weights/README.md)."""
        models = self.runtime.models
        path = WEIGHTS / f"{models.assistant}__{models.llm}.safetensors"
        return path if path.exists() else None

    @property
    def thought_dim(self) -> int:
        """The assistant's hidden size."""
        return self.runtime.assistant.hidden_size

    @property
    def _placeholder(self) -> int:
        """The assistant's token id at the thought positions."""
        return placeholder_id(self.runtime.assistant.tokenizer, self.options.placeholder_token)

    def _count(self, training: bool) -> int:
        """Soft thoughts per question: ``n_thoughts_train`` (if set) in training, else ``n_thoughts``."""
        return (self.options.n_thoughts_train or self.options.n_thoughts) if training else self.options.n_thoughts

    def _encode(self, questions: list[str], n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The assistant's prompts: instruction, question, and its turn of ``n`` placeholders.

        Returns:
            Left-padded ids ``(B, T)`` whose last ``n`` positions are the
            placeholders, and their attention mask ``(B, T)``, on the assistant's device.
        """
        assistant = self.runtime.assistant
        tokenizer = assistant.tokenizer
        system = self.options.instruction.format(n=n)
        prefix = (
            tokenizer(self.options.assistant_prefix.format(n=n) + " ", add_special_tokens=False)["input_ids"]
            if self.options.assistant_prefix
            else []
        )
        rows = [encode_chat(tokenizer, system, q, [*prefix, *[self._placeholder] * n])[0] for q in questions]
        input_ids, attention_mask = pad_batch(rows, tokenizer.pad_token_id)  # (B, T), (B, T)
        device = assistant.model.device
        return input_ids.to(device), attention_mask.to(device)

    def _last_hidden(self, attention_mask: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The assistant's last-layer hidden states ``(B, T, d_assistant)``, after the final norm.

        Args:
            attention_mask: ``(B, T)`` of a left-padded batch.
            inputs: ``input_ids`` ``(B, T)`` or ``inputs_embeds`` ``(B, T, d_assistant)``.
        """
        return self.runtime.assistant.model.base_model(
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            use_cache=False,
            **inputs,
        ).last_hidden_state

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Run the assistant once over instruction, question and N placeholders."""
        n = self._count(training)
        input_ids, attention_mask = self._encode(questions, n)  # (B, T), (B, T)
        with torch.no_grad():
            hidden = self._last_hidden(attention_mask, input_ids=input_ids)  # (B, T, d_assistant)
        # Rows are left-padded and end with the placeholders: the last n positions.
        return Thoughts(vectors=hidden[:, -n:, :].float())  # (B, N, d_assistant)
