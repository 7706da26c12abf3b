"""The SoftCoT thought producer: one forward pass of a frozen assistant.

The assistant reads an instruction and the question in its chat format; its
turn is N placeholder tokens. Its last-layer (post-norm) hidden states at
those N positions are the soft thoughts. No tokens are generated.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field

from latentreason.batching import pad_batch, position_ids
from latentreason.config import PluginOptions
from latentreason.producer import ThoughtProducer, Thoughts
from latentreason.prompting import encode_chat, placeholder_id

WEIGHTS = Path(__file__).parent / "weights"


class SoftCoTOptions(PluginOptions):
    """Options of the SoftCoT producer.

    Attributes:
        n_thoughts: soft thoughts at evaluation.
        n_thoughts_train: soft thoughts in training (the reference trains with
            32 and evaluates with 4).
        instruction: the assistant's system prompt; ``{n}`` is filled in.
        placeholder_token: assistant token at the thought positions (default:
            an existing special token).
    """

    n_thoughts: int = Field(4, gt=0)
    n_thoughts_train: int = Field(32, gt=0)
    instruction: str = (
        "You are a helpful assistant. Another model will solve the following problem. "
        "Think about the problem and produce {n} tokens of thoughts that help it reason to the answer."
    )
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

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Run the assistant once over instruction, question and N placeholders."""
        n = self.options.n_thoughts_train if training else self.options.n_thoughts
        assistant = self.runtime.assistant
        tokenizer = assistant.tokenizer
        placeholder = placeholder_id(tokenizer, self.options.placeholder_token)
        system = self.options.instruction.format(n=n)
        rows = [encode_chat(tokenizer, system, q, [placeholder] * n)[0] for q in questions]
        device = assistant.model.device
        input_ids, attention_mask = (t.to(device) for t in pad_batch(rows, tokenizer.pad_token_id))  # (B, T), (B, T)
        with torch.no_grad():
            hidden = assistant.model.base_model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids(attention_mask),
                use_cache=False,
            ).last_hidden_state  # (B, T, d_assistant), after the final norm
        # Rows are left-padded and end with the placeholders: the last n positions.
        return Thoughts(vectors=hidden[:, -n:, :].float())  # (B, N, d_assistant)
