"""The SoftCoT thought producer: one forward pass of a frozen assistant.

The assistant reads an instruction and the question in its chat format; its
turn is N placeholder tokens. Its last-layer (post-norm) hidden states at
those N positions are the soft thoughts. No tokens are generated.

The channel options (``read_at``, ``placeholder``, ``layer``, ``standardise``) change
what is read out and how; their defaults are the reference behaviour
(docs/softcot.md).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from latentreason.plugin import (
    SLOT,
    Example,
    LatentReasonError,
    PluginOptions,
    ThoughtProducer,
    Thoughts,
    encode_chat,
    pad_batch,
    placeholder_id,
    position_ids,
    text_token_id,
)
from latentreason_softcot.standardise import Standardiser

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
            placeholders (``{n}`` is filled in), or None; ``read_at: turn`` only.
        read_at: where the thoughts are read out: ``turn`` (the reference's),
            N placeholders as the assistant's turn; ``user``, N placeholders
            at the end of the user's turn, right after the question, with no
            turn switch between what it reads and the thoughts; ``text``, no
            placeholders: the states at the last N tokens of the user's text.
        placeholder: the assistant's token at the thought positions, as text
            that must be exactly one token (``" thought"``, ``"<|endoftext|>"``);
            default: an existing special token (the reference's choice).
        layer: which of the assistant's hidden states is read out: ``k`` is
            the output of decoder block ``k`` before any norm (0: the input
            embeddings), and the number of blocks (as the default, None)
            the last block's output after the final norm (the reference's).
        standardise: standardise each dimension of the read-out states with
            their mean and standard deviation on the training questions
            (fitted by ``latentreason train``, stored in its checkpoint).
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
    read_at: Literal["turn", "user", "text"] = "turn"
    placeholder: str | None = Field(None, min_length=1)
    layer: int | None = Field(None, ge=0)
    standardise: bool = False

    @model_validator(mode="after")
    def _prefix_opens_a_turn(self) -> SoftCoTOptions:
        if self.assistant_prefix and self.read_at != "turn":
            raise ValueError(
                f"assistant_prefix opens the assistant's turn of placeholders, but read_at={self.read_at!r} reads "
                "the thoughts in the user's turn; set assistant_prefix: null (or read_at: turn)"
            )
        return self


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

    @cached_property
    def _placeholder(self) -> int:
        """The assistant's token id at the thought positions (see ``placeholder``)."""
        tokenizer = self.runtime.assistant.tokenizer
        if self.options.placeholder is None:
            return placeholder_id(tokenizer)
        try:
            return text_token_id(tokenizer, self.options.placeholder)
        except LatentReasonError as exc:
            raise LatentReasonError(
                f"producer.options.placeholder for the assistant {self.runtime.model_name('assistant')!r}: {exc}"
            ) from None

    @cached_property
    def _layer(self) -> int | None:
        """The index of the read-out state in the assistant's hidden states, None for the default (checked)."""
        layer = self.options.layer
        blocks = self.runtime.assistant.model.config.num_hidden_layers
        if layer is not None and layer > blocks:
            raise LatentReasonError(
                f"producer.options.layer={layer}: the assistant {self.runtime.model_name('assistant')!r} has {blocks} "
                f"blocks; layer takes 0 (the input embeddings) to {blocks} (the last block after the final norm, "
                "the default)."
            )
        return layer

    @cached_property
    def _standardiser(self) -> Standardiser:
        """The statistics of ``standardise``, on the assistant's device."""
        return Standardiser(self.thought_dim).to(self.runtime.assistant.model.device)

    def trainable(self) -> nn.Module | None:
        """With ``standardise``: its statistics (buffers that checkpoints store; nothing is trained)."""
        return self._standardiser if self.options.standardise else None

    def fitted_from(self) -> dict[str, Any]:
        """With ``standardise``: the assistant, read-out position, placeholder and layer its statistics are fitted for.

        ``read_at`` is named only when it is not the reference's ``turn``, so
        checkpoints fitted before the option existed still load.
        """
        if not self.options.standardise:
            return {}
        options = self.options
        return {
            "assistant": self.runtime.model_name("assistant"),
            "placeholder": options.placeholder,
            "layer": options.layer,
        } | ({"read_at": options.read_at} if options.read_at != "turn" else {})

    def fit(self, examples: list[Example], questions: list[str], *, instruction: str, batch_size: int) -> None:
        """Fit ``standardise``'s statistics on the states at every thought position of the training ``questions``."""
        n = self._count(True)
        batches = (
            self._states(questions[start : start + batch_size], n).flatten(0, 1)  # (B*N, d_assistant)
            for start in range(0, len(questions), batch_size)
        )
        self._standardiser.fit(batches)

    def _count(self, training: bool) -> int:
        """Soft thoughts per question: ``n_thoughts_train`` (if set) in training, else ``n_thoughts``."""
        return (self.options.n_thoughts_train or self.options.n_thoughts) if training else self.options.n_thoughts

    def _encode(self, questions: list[str], n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The assistant's prompts: instruction, question, and ``n`` thought positions where ``read_at`` puts them.

        Returns:
            Left-padded ids ``(B, T)``, their attention mask ``(B, T)``, and
            the index of each row's first thought position ``(B,)`` (its
            thoughts are the ``n`` positions from there), on the assistant's device.

        Raises:
            LatentReasonError: ``read_at: text`` and a question is shorter than ``n`` tokens.
        """
        assistant = self.runtime.assistant
        tokenizer = assistant.tokenizer
        system = self.options.instruction.format(n=n)
        read_at = self.options.read_at
        placeholders = [] if read_at == "text" else [self._placeholder] * n
        if read_at == "turn":
            prefix = (
                tokenizer(self.options.assistant_prefix.format(n=n) + " ", add_special_tokens=False)["input_ids"]
                if self.options.assistant_prefix
                else []
            )
            rows = [encode_chat(tokenizer, system, q, [*prefix, *placeholders])[0] for q in questions]
            starts = [len(row) - n for row in rows]  # the turn ends with the placeholders
        else:
            encoded = [encode_chat(tokenizer, system, q + SLOT, placeholders) for q in questions]
            rows = [row for row, _ in encoded]
            # user: the placeholders start at the slot; text: the question's last n tokens end there
            starts = [at if read_at == "user" else at - n for _, at in encoded]
            if min(starts) < 0:
                raise LatentReasonError(
                    f"producer.options.read_at=text reads the last {n} tokens of the user's text, but a prompt "
                    f"has only {min(starts) + n} tokens before that point; use fewer thoughts or read_at: user."
                )
        input_ids, attention_mask = pad_batch(rows, tokenizer.pad_token_id)  # (B, T), (B, T)
        # left padding shifts each row right by what it lacks of the longest
        start = torch.tensor([at + input_ids.shape[1] - len(row) for at, row in zip(starts, rows)])  # (B,)
        device = assistant.model.device
        return input_ids.to(device), attention_mask.to(device), start.to(device)

    def _hidden(self, attention_mask: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The assistant's read-out hidden states ``(B, T, d_assistant)``: see ``layer``.

        Args:
            attention_mask: ``(B, T)`` of a left-padded batch.
            inputs: ``input_ids`` ``(B, T)`` or ``inputs_embeds`` ``(B, T, d_assistant)``.
        """
        layer = self._layer
        out = self.runtime.assistant.model.base_model(
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            use_cache=False,
            output_hidden_states=layer is not None,
            **inputs,
        )
        # hidden_states: the embeddings, each block's output, the last one after the final norm
        return out.last_hidden_state if layer is None else out.hidden_states[layer]

    def _states(self, questions: list[str], n: int) -> torch.Tensor:
        """The read-out states at the ``n`` thought positions ``(B, N, d_assistant)``, in float32, before ``standardise``."""
        input_ids, attention_mask, start = self._encode(questions, n)  # (B, T), (B, T), (B,)
        with torch.no_grad():
            hidden = self._hidden(attention_mask, input_ids=input_ids)  # (B, T, d_assistant)
        at = start[:, None] + torch.arange(n, device=start.device)  # (B, N)
        return hidden[torch.arange(len(questions), device=at.device)[:, None], at].float()  # (B, N, d_assistant)

    def produce(self, questions: list[str], *, instruction: str, training: bool = False) -> Thoughts:
        """Run the assistant once over instruction, question and N placeholders."""
        vectors = self._states(questions, self._count(training))  # (B, N, d_assistant)
        return Thoughts(vectors=self._standardiser(vectors) if self.options.standardise else vectors)
