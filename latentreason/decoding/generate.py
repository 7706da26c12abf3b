"""What a generated chain is, the answer-complete stopping rule, and ``transformers``' ``generate()``.

Runs decode with the project's loop (:mod:`latentreason.decoding`);
:func:`generate` serves models the loop cannot rewrite (sliding-window
layers), in static batches, and is the reference the loop is tested against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from latentreason.components.example import Example
from latentreason.components.injector import LLMInputs
from latentreason.config import GenerationConfig
from latentreason.models.spec import LoadedModel


@dataclass
class Generated:
    """One generated continuation.

    Attributes:
        text: decoded text without special tokens.
        token_ids: generated ids up to and including the first stop token.
        peak_kv: most KV-cache entries this row could attend to at any step.
        dependency: KV entries attended to, summed over generated tokens.
        truncated: the chain reached ``max_new_tokens`` without ending its
            turn or completing its answer (cut by the cap).
        soft_steps: indices into ``token_ids`` of the soft steps: the LLM read
            a vector its decoding controller chose there, and the token is the
            one the controller recorded (see ``DecodingController.next_input``).
    """

    text: str
    token_ids: list[int]
    peak_kv: int = 0
    dependency: int = 0
    truncated: bool = False
    soft_steps: list[int] = field(default_factory=list)


@dataclass
class Written:
    """An example's chains, before scoring.

    Attributes:
        example: the example.
        prompt: its (first chain's) LLM prompt as text.
        chains: the chains, K thought sets x samples of them.
        seconds: wall time attributed to it.
    """

    example: Example
    prompt: str
    chains: list[Generated]
    seconds: float


class AnswerComplete(StoppingCriteria):
    """Stops each row once its text matches ``pattern`` (e.g. a closed ``\\boxed{}``).

    Only the last ``window`` tokens are decoded per step, so the check costs the
    same at every step.
    """

    def __init__(self, tokenizer, pattern: re.Pattern[str], window: int = 24) -> None:
        self.tokenizer = tokenizer
        self.pattern = pattern
        self.window = window

    def finished(self, rows: list[list[int]]) -> list[bool]:
        """Which of these generated-token rows contain a complete answer."""
        tails = self.tokenizer.batch_decode([r[-self.window :] for r in rows], skip_special_tokens=True)
        return [bool(self.pattern.search(t)) for t in tails]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        """Return a ``(B,)`` bool tensor: which rows are finished."""
        return torch.tensor(self.finished(input_ids[:, -self.window :].tolist()), device=input_ids.device)


def generate(
    llm: LoadedModel,
    inputs: LLMInputs,
    config: GenerationConfig,
    answer_complete: re.Pattern[str] | None = None,
) -> list[Generated]:
    """Generate continuations for a left-padded batch with the KV cache.

    Args:
        llm: the reasoning LLM.
        inputs: ``inputs_embeds (B, T, d)`` and ``attention_mask (B, T)``.
        config: length and sampling settings.
        answer_complete: stop a row as soon as this matches its recent text.

    Returns:
        One :class:`Generated` per row.
    """
    stops = set(llm.eos_token_ids)
    criteria = StoppingCriteriaList()
    if config.stop_at_answer and answer_complete is not None:
        criteria.append(AnswerComplete(llm.tokenizer, answer_complete))
    sampling = (
        dict(do_sample=True, temperature=config.temperature, top_p=config.top_p)
        if config.do_sample
        else dict(do_sample=False)
    )
    with torch.inference_mode():
        out = llm.model.generate(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=inputs.attention_mask,
            max_new_tokens=config.max_new_tokens,
            min_new_tokens=config.min_new_tokens,
            eos_token_id=sorted(stops),
            pad_token_id=llm.tokenizer.pad_token_id,
            stopping_criteria=criteria,
            use_cache=True,
            **sampling,
        )  # (B, new_tokens): only new tokens when generating from embeddings
    pad = llm.tokenizer.pad_token_id
    prompt_lengths = inputs.attention_mask.sum(-1).tolist()
    results = []
    for prompt, row in zip(prompt_lengths, out.tolist()):
        # A row ends at its first stop token (kept) or at the padding that follows
        # a row stopped by the answer criterion (dropped).
        end = next((i + (t != pad) for i, t in enumerate(row) if t in stops or t == pad), len(row))
        ids = row[:end]
        n = len(ids)  # token i (1-based) attends to the prompt and i generated entries
        answered = bool(criteria) and criteria[0].finished([ids])[0]
        truncated = n >= config.max_new_tokens and ids[-1] not in stops and not answered
        text = llm.tokenizer.decode(ids, skip_special_tokens=True)
        results.append(Generated(text, ids, prompt + n, n * prompt + n * (n + 1) // 2, truncated))
    return results
