"""One example's data path stage by stage, a raw KV-cached decoding loop, and a timer of a module's forward calls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from latentreason.assembly.pipeline import Pipeline
from latentreason.components.batching import position_ids
from latentreason.components.evaluator import Score
from latentreason.components.example import Example
from latentreason.components.injector import LLMInputs
from latentreason.components.producer import Thoughts
from latentreason.models.spec import LoadedModel


class Stages:
    """The steps of :meth:`Pipeline.answer`, callable one at a time for timing.

    ``inject(*project(produce()))`` builds the same input as
    :meth:`Pipeline.inputs` (``tests/benchmarks`` checks it).

    Args:
        pipeline: the method.
        examples: the batch.
    """

    def __init__(self, pipeline: Pipeline, examples: list[Example]) -> None:
        self.pipeline = pipeline
        self.examples = examples
        self.llm = pipeline.runtime.llm
        self.questions = [pipeline.task.format_question(ex) for ex in examples]

    def produce(self) -> Thoughts:
        """The producer's thoughts (for SoftCoT: one assistant forward pass)."""
        with torch.no_grad():
            return self.pipeline.producer.produce_for(
                self.examples, self.questions, instruction=self.pipeline.instruction
            )

    def project(self, thoughts: Thoughts) -> tuple[Thoughts, torch.Tensor | None]:
        """The projected thoughts ``(B, N, d_llm)``, or None without vectors."""
        if thoughts.vectors is None or self.pipeline.projector is None:
            return thoughts, None
        with torch.no_grad():
            return thoughts, self.pipeline.projector(thoughts.vectors.to(self.llm.model.device))  # (B, N, d_llm)

    def inject(self, thoughts: Thoughts, vectors: torch.Tensor | None) -> LLMInputs:
        """The LLM input: prompt embeddings with the thoughts spliced in."""
        with torch.no_grad():
            return self.pipeline.injector.build(self.pipeline.instruction, self.questions, vectors, thoughts.hints)

    def score(self, texts: list[str]) -> list[Score]:
        """Answer extraction and scoring of one text per example."""
        return [self.pipeline.evaluator.score(text, ex) for text, ex in zip(texts, self.examples)]


@dataclass
class Cursor:
    """A batch in the middle of greedy, KV-cached decoding.

    Attributes:
        cache: the KV cache; a step appends to it in place.
        token: ``(B, 1)`` the next input token of each row (not yet cached).
        attention_mask: ``(B, L)`` over the ``L`` cached positions.
        position: ``(B, 1)`` the position id of ``token``.
    """

    cache: Any
    token: torch.Tensor
    attention_mask: torch.Tensor
    position: torch.Tensor

    def rewind(self) -> None:
        """Drop cache entries written after this cursor was made, to repeat its step."""
        extra = self.cache.get_seq_length() - self.attention_mask.shape[1]
        if extra > 0:
            self.cache.crop(-extra)


def prefill(llm: LoadedModel, inputs: LLMInputs) -> Cursor:
    """One forward pass over the injected prompt; logits only at the last position."""
    mask = inputs.attention_mask  # (B, T)
    positions = position_ids(mask)  # (B, T)
    with torch.no_grad():
        out = llm.model(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )  # logits (B, 1, V)
    return Cursor(out.cache, out.logits[:, -1].argmax(-1, keepdim=True), mask, positions[:, -1:] + 1)


def decode_step(llm: LoadedModel, cursor: Cursor) -> Cursor:
    """One cached greedy decoding step: feed ``cursor.token``, pick the next one."""
    mask = torch.cat(
        [cursor.attention_mask, cursor.attention_mask.new_ones(cursor.token.shape[0], 1)], dim=1
    )  # (B, L+1)
    with torch.no_grad():
        out = llm.model(
            input_ids=cursor.token,
            attention_mask=mask,
            position_ids=cursor.position,
            cache=cursor.cache,
            use_cache=True,
            logits_to_keep=1,
        )  # logits (B, 1, V)
    return Cursor(out.cache, out.logits[:, -1].argmax(-1, keepdim=True), mask, cursor.position + 1)


class ForwardTimer:
    """Context manager: the wall time of every forward call of some modules while open.

    Args:
        modules: e.g. the LLM's body and its int8 twin's (the same module
            given twice counts once); their forward pre- and post-hooks take the times.

    Attributes:
        calls: seconds per forward call, in call order.
    """

    def __init__(self, *modules: torch.nn.Module) -> None:
        self.modules = list({id(m): m for m in modules}.values())
        self.calls: list[float] = []
        self._started = 0.0

    def _start(self, module: torch.nn.Module, args: tuple) -> None:
        self._started = time.perf_counter()

    def _stop(self, module: torch.nn.Module, args: tuple, output: object) -> None:
        self.calls.append(time.perf_counter() - self._started)

    def __enter__(self) -> ForwardTimer:
        self._hooks = [
            hook
            for m in self.modules
            for hook in (m.register_forward_pre_hook(self._start), m.register_forward_hook(self._stop))
        ]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()


def llm_bodies(llm: LoadedModel) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The LLM's transformer body that reads prompts and the one that runs decoding steps (its int8 twin's, if any)."""
    return llm.model.base_model, llm.stepper.base_model
