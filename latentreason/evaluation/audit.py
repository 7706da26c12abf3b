"""The thought audit: how much of the question the vectors a method injects carry, and how much the LLM reads them.

For any method whose producer makes soft thoughts (SoftCoT, SoftCoT++,
pause-trained, a plugin's producer), on held-back *training* questions
(never the evaluation split), per stage (``producer``: the producer's
vectors; ``projected``: the projector's output; ``llm input``: what the LLM
receives at the thought positions, after any ``thoughts_from`` ablation):

- the spread between questions (:mod:`latentreason.evaluation.spread`):
  question-specific share, cosine, effective rank, norm against the LLM's
  token embeddings;
- a linear probe to simple properties of the question, with chance beside
  it (:mod:`latentreason.evaluation.probe`);

and once, the attention mass the LLM puts on the thoughts while it writes,
against as many prompt tokens just before them
(:mod:`latentreason.evaluation.attention`). ``latentreason thoughts`` prints
it, ``latentreason train`` writes it beside the weights (``audit.json``),
and comparison tables summarise any audit found beside a cell.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from latentreason.assembly.pipeline import Pipeline
from latentreason.components.example import Example
from latentreason.components.task import TaskSpec
from latentreason.errors import LatentReasonError
from latentreason.evaluation.attention import NEW_TOKENS, AttentionMass, attention_mass
from latentreason.evaluation.probe import FOLDS, ProbeScore, probe, question_properties
from latentreason.evaluation.spread import Spread, spread
from latentreason.storage import atomic_write

AUDIT_FILE = "audit.json"
"""The audit's file name in a training folder or a results folder."""

MIN_QUESTIONS = 2 * FOLDS
"""The fewest questions an audit reads (two per probe fold)."""

PROPERTY_NAMES = {"dollar": "$", "length": "length", "numbers": "numbers", "answer": "answer"}
"""Short names of the probed properties in the printed forms."""


@dataclass
class Audit:
    """One method's thought audit on a slice of held-back training questions.

    Attributes:
        method: the method's label (or producer).
        task: the task.
        split: the split the questions came from (a training split).
        offset: the first question's row in it.
        examples: how many questions.
        thoughts_from: which thoughts the LLM received (``own`` or an ablation).
        weights: the weights files the method loaded.
        embed_norm: the LLM's mean token-embedding norm.
        stages: the spread at each stage.
        probes: stage -> property -> the probe's accuracy and chance.
        attention: the attention mass on the thoughts, or None when the
            injector does not mark the thought positions.
    """

    method: str
    task: str
    split: str
    offset: int
    examples: int
    thoughts_from: str
    weights: list[str]
    embed_norm: float
    stages: list[Spread]
    probes: dict[str, dict[str, ProbeScore]] = field(default_factory=dict)
    attention: AttentionMass | None = None

    @property
    def final(self) -> Spread:
        """The last stage measured: what the LLM receives where the injector says, else the projector's output."""
        return self.stages[-1]

    def rows(self) -> str:
        """Where the questions came from, e.g. ``gsm8k/train rows 1100-1163``."""
        return f"{self.task}/{self.split} rows {self.offset}-{self.offset + self.examples - 1}"

    def probe_text(self, stage: str) -> str:
        """The probe's accuracies at ``stage`` with chance, e.g. ``$ 0.97 (0.70), length 0.80 (0.35), ...``."""
        scores = self.probes.get(stage, {})
        return ", ".join(f"{PROPERTY_NAMES[p]} {s.accuracy:.2f} ({s.chance:.2f})" for p, s in scores.items())

    def short(self) -> str:
        """Two lines: the final stage's spread, its probe and the attention mass."""
        last = self.final
        first = (
            f"thought audit ({self.rows()}, {last.stage}): question-specific share {last.specific_share:.3g}, "
            f"cosine {last.cosine:.5f}, effective rank {last.effective_rank:.1f}, norm {last.norm_ratio:.2f}x the token embeddings"
        )
        second = f"probe accuracy (chance): {self.probe_text(last.stage)}"
        if self.attention is not None:
            second += (
                f"; attention over its first {NEW_TOKENS} tokens: {self.attention.thoughts:.3f} on the thoughts, "
                f"{self.attention.before:.3f} on as many prompt tokens before them"
            )
        return f"{first}\n{second}"

    def to_json(self) -> dict[str, Any]:
        """The audit as JSON-ready data (what :func:`read_audit` reads back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audit:
        """The audit :meth:`to_json` wrote."""
        attention = data.get("attention")
        return cls(
            **{
                **data,
                "stages": [Spread(**s) for s in data["stages"]],
                "probes": {
                    stage: {p: ProbeScore(**s) for p, s in scores.items()} for stage, scores in data["probes"].items()
                },
                "attention": AttentionMass(**attention) if attention else None,
            }
        )

    def write(self, path: str | Path) -> None:
        """Write the audit as JSON to ``path``."""
        text = json.dumps(self.to_json(), indent=1) + "\n"
        atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_audit(path: str | Path) -> Audit:
    """The audit in a JSON file :meth:`Audit.write` wrote.

    Raises:
        LatentReasonError: the file is not an audit.
    """
    try:
        return Audit.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise LatentReasonError(
            f"{str(path)!r} is not a readable thought audit ({type(exc).__name__}: {exc})."
        ) from None


def check_slice(task: TaskSpec, split: str, count: int) -> None:
    """Refuse to audit ``count`` questions of ``split``: the evaluation split, or fewer than :data:`MIN_QUESTIONS`.

    Raises:
        LatentReasonError: either.
    """
    if split == task.eval_split:
        raise LatentReasonError(
            f"The thought audit reads held-back training questions, never {task.name}'s evaluation split {split!r}: "
            f"pass --split {task.train_split or 'TRAIN_SPLIT'} with an --offset past the training rows (e.g. --split "
            "train --offset 1100 --limit 64 for the SoftCoT study)."
        )
    if count < MIN_QUESTIONS:
        raise LatentReasonError(
            f"The thought audit needs at least {MIN_QUESTIONS} examples (two per fold of its {FOLDS}-fold probe); "
            f"data selects {count}."
        )


def audit(pipeline: Pipeline, examples: list[Example], split: str, offset: int) -> Audit:
    """Audit the pipeline's thoughts on ``examples``, held-back training questions from row ``offset`` of ``split``.

    The producer reads each question as at evaluation (its own question); the
    LLM-input stage and the attention see what the LLM receives under the
    config's ``thoughts_from``.

    Raises:
        LatentReasonError: ``split`` is the task's evaluation split, fewer than
            :data:`MIN_QUESTIONS` questions, or the producer makes no soft thoughts.
    """
    task, config = pipeline.task, pipeline.config
    check_slice(task, split, len(examples))
    for module in pipeline.trainable().values():
        module.train(False)  # no dropout
    llm = pipeline.runtime.llm
    stages: dict[str, list[torch.Tensor]] = {"producer": [], "projected": [], "llm input": []}
    masses: list[AttentionMass] = []
    step = config.generation.batch_size
    with torch.no_grad():
        for start in range(0, len(examples), step):
            batch = examples[start : start + step]
            questions = [task.format_question(ex) for ex in batch]
            thoughts = pipeline.producer.produce_for(batch, questions, instruction=pipeline.instruction)
            if thoughts.vectors is None and not thoughts.latent_steps:
                raise LatentReasonError(
                    f"Producer {config.producer.name!r} makes no soft thoughts (it gives "
                    f"{'text hints' if thoughts.hints else 'nothing'} to the LLM); there is nothing to audit."
                )
            vectors = thoughts.vectors  # (B*K, N, d_src); None for a latent prefix, whose thoughts are LLM inputs only
            if vectors is not None:
                stages["producer"].append(vectors.reshape(len(batch), -1, vectors.shape[-1]).cpu())  # (B, K*N, d_src)
                if pipeline.projector is None:
                    continue
                out = pipeline.projector(vectors.to(llm.model.device))  # (B*K, N, d_llm)
                stages["projected"].append(out.reshape(len(batch), -1, out.shape[-1]).cpu())  # (B, K*N, d_llm)
            inputs = pipeline.inputs(batch)
            if inputs.thought_mask is None:
                continue
            received = inputs.inputs_embeds[inputs.thought_mask]  # (B*K*N, d_llm), row-major
            stages["llm input"].append(received.reshape(len(batch), -1, received.shape[-1]).float().cpu())
            masses.append(attention_mass(llm, inputs))
    labels = question_properties([task.format_question(ex) for ex in examples], [ex.answer for ex in examples])
    spreads, probes = [], {}
    for stage, parts in stages.items():
        if parts:
            vectors = torch.cat(parts)  # (Q, S, d)
            spreads.append(spread(stage, vectors, llm.embed_norm))
            probes[stage] = {name: probe(vectors, classes) for name, classes in labels.items()}
    tokens = sum(m.tokens for m in masses)
    attention = (
        AttentionMass(
            sum(m.thoughts * m.tokens for m in masses) / tokens,
            sum(m.before * m.tokens for m in masses) / tokens,
            tokens,
        )
        if masses
        else None
    )
    return Audit(
        method=config.label or config.producer.name,
        task=task.name,
        split=split,
        offset=offset,
        examples=len(examples),
        thoughts_from=config.thoughts_from,
        weights=list(pipeline.checkpoints),
        embed_norm=llm.embed_norm,
        stages=spreads,
        probes=probes,
        attention=attention,
    )
