"""The placeholder injector: soft thoughts overwrite placeholder embeddings.

The LLM prompt is the task instruction (system turn), the question, then an
optional begin marker, N placeholder tokens and an end marker, all existing
special tokens (Qwen2.5's ``<|box_start|>``/``<|box_end|>`` around
``<|endoftext|>``, as SoftCoT does; no new vocabulary). The embeddings at the
placeholder positions are replaced by the projected thoughts; N is the
producer's number of thoughts (its ``n_thoughts`` option, ``--n-thoughts``).
Where the slots go is the ``position`` option: the end of the question (the
default), a user turn of their own after it, or the start of the assistant's
reply. It is a core built-in because SoftCoT, the pause-token baselines and
third-party methods all use it; it is registered through the same hook as any
plugin's.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from latentreason.components.batching import pad_batch, pad_left
from latentreason.components.injector import IGNORE_INDEX, Injector, LLMInputs
from latentreason.components.prompting import SLOT, encode_chat, marker_ids, placeholder_id
from latentreason.config import PluginOptions


class PlaceholderOptions(PluginOptions):
    """Options of the placeholder injector.

    Attributes:
        markers: frame the thoughts with a begin/end special-token pair when the
            vocabulary has one. Default (None): framed in a user turn, not at
            the start of the assistant's reply (``position: answer``), which
            would then open with two tokens the LLM never wrote (Qwen2.5's
            box markers are untrained: identical embeddings); True or False
            decides for every position.
        placeholder_token: token at the thought positions (default: an existing
            special token such as ``<|endoftext|>``).
        position: ``"question"`` puts the thoughts at the end of the user turn,
            after the question; ``"turn"`` in a second user turn of their own
            right after it (``thoughts_note``, if any, opens that turn);
            ``"answer"`` at the start of the assistant turn, right after its
            header, as the first words of the reply.
        hint_prefix: text before a producer's text hint in the user turn.
        thoughts_note: a sentence before the thoughts (in the user turn that
            holds them; with ``position: answer``, at the end of the question),
            telling the LLM what they are, or None.
    """

    style_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "softcot": {
            "thoughts_note": "Below are thoughts from a weaker assistant model. Use them if they help your reasoning; "
            "if they are wrong, ignore them."
        }
    }

    markers: bool | None = None
    placeholder_token: str | None = None
    position: Literal["question", "turn", "answer"] = "question"
    hint_prefix: str = "Hints from an assistant:"
    thoughts_note: str | None = None


class PlaceholderInjector(Injector):
    """Splices projected thoughts into the LLM input at placeholder positions."""

    Options = PlaceholderOptions
    options: PlaceholderOptions

    def __init__(self, options: PlaceholderOptions, llm) -> None:
        super().__init__(options, llm)
        tokenizer = llm.tokenizer
        self.placeholder = placeholder_id(tokenizer, options.placeholder_token)
        framed = options.position != "answer" if options.markers is None else options.markers
        self.markers = marker_ids(tokenizer) if framed else None

    def _encode(self, instruction: str, question: str, n: int, hint: str | None) -> tuple[list[int], list[int]]:
        """Token ids of one prompt and the positions of its ``n`` placeholders."""
        user = question
        if hint:
            user += f"\n\n{self.options.hint_prefix} {hint}"
        note = f"{self.options.thoughts_note}\n\n" if n and self.options.thoughts_note else ""
        position = self.options.position if n else None
        if position == "question":
            turns = [f"{user}\n\n{note}{SLOT}"]
        elif position == "turn":
            turns = [user, f"{note}{SLOT}"]
        else:  # no thoughts, or they open the reply (position answer), after a question that ends with the note
            turns = [f"{user}\n\n{self.options.thoughts_note}" if note else user]
        span = [self.placeholder] * n
        if n and self.markers:
            span = [self.markers[0], *span, self.markers[1]]
        ids, start = encode_chat(self.llm.tokenizer, instruction, turns, span)
        first = start + (1 if n and self.markers else 0)
        return ids, list(range(first, first + n))

    def build(
        self,
        instruction: str,
        questions: list[str],
        thoughts: torch.Tensor | None = None,
        hints: list[str] | None = None,
        targets: list[list[int]] | None = None,
    ) -> LLMInputs:
        """Build the left-padded LLM input; see :meth:`Injector.build`."""
        n = 0 if thoughts is None else thoughts.shape[1]
        rows, slots, labels = [], [], []
        for i, question in enumerate(questions):
            ids, positions = self._encode(instruction, question, n, hints[i] if hints else None)
            target = targets[i] if targets else []
            rows.append(ids + target)
            slots.append(positions)
            labels.append([IGNORE_INDEX] * len(ids) + target)
        tokenizer = self.llm.tokenizer
        input_ids, attention_mask = pad_batch(rows, tokenizer.pad_token_id)  # (B, T), (B, T)
        width = input_ids.shape[1]
        device = self.llm.model.device
        with torch.no_grad():
            embeds = self.llm.embed(input_ids.to(device))  # (B, T, d_llm)
        if thoughts is not None and n:
            slot_mask = torch.zeros(input_ids.shape, dtype=torch.bool)  # (B, T)
            for b, positions in enumerate(slots):
                offset = width - len(rows[b])
                slot_mask[b, [offset + p for p in positions]] = True
            embeds = embeds.masked_scatter(
                slot_mask.to(device).unsqueeze(-1),
                thoughts.to(device=device, dtype=embeds.dtype),  # (B, N, d_llm), row-major like the mask
            )
        return LLMInputs(
            inputs_embeds=embeds,
            attention_mask=attention_mask.to(device),
            labels=pad_left(labels, IGNORE_INDEX).to(device) if targets else None,
            prompts=[tokenizer.decode(r[: len(r) - len(targets[i]) if targets else None]) for i, r in enumerate(rows)],
        )
