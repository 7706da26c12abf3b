"""``loss`` and ``thoughts``: measure a method on a data slice without training it."""

from __future__ import annotations

import click

from latentreason.cli.common import build_config, config_options, echo, friendly


def slice_text(config, examples: int, weights: list[str]) -> str:
    """Which examples a measurement on a data slice used, and with which weights (``loss``, ``thoughts``)."""
    data = config.data
    where = f"{data.task}/{data.split or 'evaluation split'}, {examples} examples from offset {data.offset}"
    return f"{where}; weights: {', '.join(weights) or 'none'}"


@click.command()
@config_options
@click.option("--offset", type=int, help="Skip the first N examples of the split (e.g. past the training rows).")
@friendly
def loss(config_path, sets, quiet, offset, **flags):
    """Mean NLL of the gold rationale + answer under a method, without training.

    The same number as training's validation loss (targets cut at
    train.max_target_tokens, batches of train.batch_size), on the examples
    --split/--offset/--limit select. Compares checkpoints on problems none of
    them trained on, e.g. GSM8K training rows 1100-1199:

    \b
      latentreason loss --producer softcot --checkpoint A.safetensors --split train --offset 1100 --limit 100
    """
    from latentreason.api import loss as loss_api

    config = build_config(config_path, [*sets, *([f"data.offset={offset}"] if offset is not None else [])], **flags)
    report = loss_api(config)
    echo(f"loss: {report.loss:.4f}  ({slice_text(config, report.examples, report.weights)})")


@click.command()
@config_options
@click.option("--offset", type=int, help="Skip the first N examples of the split (e.g. past the training rows).")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the full audit as JSON to this file.")
@friendly
def thoughts(config_path, sets, quiet, offset, out, **flags):
    """Audit a method's soft thoughts on held-back training questions.

    Per stage (the producer's vectors, the projector's output, what the LLM
    receives at the thought positions): the share of a vector's energy that
    is specific to its question (0: every question gets the same thoughts),
    the mean cosine between two questions' thoughts in the same slot, the
    effective rank of how they differ, and their norm against the LLM's
    token embeddings; a 5-fold linear probe from the thoughts to properties
    of the question ($ in it, length tertile, count of numbers) and of its
    gold answer (parity, or the value among a few: does a positive control
    keep the answer?), with the majority class's share; and the attention
    mass the LLM puts on the thoughts over its first 32 greedy tokens. Reads a training split only
    (--split train with an --offset past the training rows), at least 10
    examples. What each number means: docs/thought-audit.md. Example:

    \b
      latentreason thoughts --producer softcot --checkpoint A.safetensors --split train --offset 1100 --limit 64
    """
    from latentreason.api import thought_audit
    from latentreason.evaluation.attention import NEW_TOKENS

    config = build_config(config_path, [*sets, *([f"data.offset={offset}"] if offset is not None else [])], **flags)
    report = thought_audit(config)
    echo(
        f"thoughts of {report.method}, thoughts_from: {report.thoughts_from} "
        f"({slice_text(config, report.examples, report.weights)})"
    )
    echo(
        "| stage | question-specific share | cosine between questions | effective rank | mean norm "
        "| norm / token embedding |\n|---|---|---|---|---|---|"
    )
    for s in report.stages:
        echo(
            f"| {s.stage} | {s.specific_share:.3g} | {s.cosine:.6f} | {s.effective_rank:.2f} | {s.norm:.3f} "
            f"| {s.norm_ratio:.3f} |"
        )
    echo("")
    echo("probe accuracy (chance: the majority class), 5-fold ridge:")
    for s in report.stages:
        echo(f"  {s.stage}: {report.probe_text(s.stage)}")
    if report.attention is not None:
        a = report.attention
        echo(
            f"attention over the first {NEW_TOKENS} new tokens (mean over layers, heads, {a.tokens} tokens): "
            f"{a.thoughts:.4f} on the thoughts, {a.before:.4f} on as many prompt tokens just before them"
        )
    if out:
        report.write(out)
        echo(f"audit: {out}")
