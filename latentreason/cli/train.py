"""``train``, ``distill`` and ``train-trigger``: train a method's trainable parts, make self-distilled targets for
that, or train the segment-boundary trigger."""

from __future__ import annotations

import click

from latentreason.cli.common import build_config, config_options, echo, friendly


@click.command()
@config_options
@click.option("--epochs", type=int, help="Training epochs.")
@click.option("--lr", type=float, help="Peak learning rate (AdamW).")
@click.option("--train-limit", type=int, help="Training examples to use.")
@click.option("--train-batch-size", type=int, help="Training batch size.")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Checkpoint folder (default checkpoints/<producer>-<task>)."
)
@friendly
def train(config_path, sets, quiet, **flags):
    """Train a method's trainable parts (e.g. the SoftCoT projector).

    The assistant and the LLM stay frozen. The trained parts start from
    --checkpoint if given, else from their seeded initialization (never from a
    shipped projector). Checkpoints (safetensors) are written every epoch; an
    interrupted run resumes when the same command is run again. The weights to
    pass to `run --checkpoint` are <out>/last.safetensors. `--set
    train.targets=FILE` supervises with the LLM's own chains from `distill`
    instead of the gold rationales (docs/self-distillation.md). A method that
    injects vectors is then audited on held-back training rows (the `audit`
    section; docs/thought-audit.md): two lines here, <out>/audit.json in full.
    """
    from latentreason.api import checkpoint_dir
    from latentreason.api import train as train_api
    from latentreason.evaluation.audit import AUDIT_FILE

    config = build_config(config_path, sets, **flags)
    result = train_api(config, progress=not quiet)
    echo(f"started from: {', '.join(result.started_from) or 'seeded initialization (no --checkpoint)'}")
    if result.history:
        first, last = result.history[0]["loss"], result.history[-1]["loss"]
        echo(f"steps: {len(result.history)}  loss: first {first:.4f} -> last {last:.4f}")
    for v in result.validation:
        echo(f"epoch {v['epoch']}: validation loss {v['loss']:.4f}")
    echo(f"throughput: {result.examples_per_s:.2f} examples/s")
    echo(f"weights: {result.weights}  (folder {checkpoint_dir(config)})")
    if result.targets is not None:
        echo(result.targets.text())
    if result.audit is not None:
        echo(result.audit.short())
        echo(f"full audit: {checkpoint_dir(config) / AUDIT_FILE}")


@click.command()
@config_options
@click.option("--offset", type=int, help="Skip the first N problems of the split.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="The targets file to write (JSONL with a header)."
)
@click.option(
    "--tries", type=click.IntRange(min=0), default=8, show_default=True, help="Sampled chains per greedy-wrong problem."
)
@click.option(
    "--temperature", type=click.FloatRange(min=0, min_open=True), default=0.7, show_default=True, help="Sampling."
)
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True, help="Sampling.")
@friendly
def distill(config_path, sets, quiet, offset, out, tries, temperature, top_p, **flags):
    """Write self-distilled training targets: the LLM's own correct chains on training problems.

    Greedy first; each problem it gets wrong then gets --tries sampled chains;
    a problem keeps its greedy chain if correct, else its first correct sampled
    one, else nothing (correct: the strict answer, in the format the
    instruction asks for). Runs the configured method (default --producer cot)
    and engine (--engine vllm on a GPU) on the training split (default; never
    the evaluation split). The file's header records the LLM, the prompt, the
    settings, the seed, the date and the counts; `train --set
    train.targets=FILE` trains on it. The two passes keep results folders in
    FILE.passes/, so an interrupted run resumes with the same command. Example:

    \b
      latentreason distill --task gsm8k --offset 0 --limit 1016 --out data/gsm8k-selfdistilled.jsonl
    """
    from latentreason.api import distill as distill_api
    from latentreason.training.distill import Sampling

    flags["producer"] = flags["producer"] or "cot"
    config = build_config(config_path, [*sets, *([f"data.offset={offset}"] if offset is not None else [])], **flags)
    report = distill_api(config, out, Sampling(tries, temperature, top_p), progress=not quiet)
    counts = report.provenance["counts"]
    echo(
        f"problems: {counts['problems']}  correct greedy: {counts['greedy_correct']}  correct sampled: "
        f"{counts['sampled_correct']} (of {counts['sampled_chains']} sampled chains)  kept: {counts['kept']}"
    )
    echo(f"targets: {report.path}  (passes: {report.passes})")


@click.command("train-trigger")
@config_options
@click.option("--train-limit", type=int, help="Training examples (default: train.limit, 256).")
@click.option(
    "--val-limit",
    type=click.IntRange(min=1),
    help="Validation examples, for the threshold (default: train.val_limit, 16).",
)
@click.option(
    "--label",
    type=click.Choice(["paragraph", "sentence"]),
    default="paragraph",
    show_default=True,
    help="The text rule whose segment ends the trigger learns to predict.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Full-batch AdamW steps of the logistic regression.",
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True, help="Learning rate."
)
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Trigger file (default checkpoints/trigger-<task>.safetensors)."
)
@friendly
def train_trigger(config_path, sets, quiet, val_limit, label, epochs, lr, out, **flags):
    """Train the segment-boundary trigger for `segment: classifier` decoding.

    The trigger is logistic regression on the frozen LLM's last-layer hidden
    state: after each generated token it says whether the current segment
    ends there. It learns from the gold rationales of the task's training
    split: each is fed once through the LLM (teacher-forced after the method's
    prompt), and a token is a positive where the --label text rule ends a
    segment. The threshold with the best F1 on the validation examples is
    stored in the file with the metrics. Use the producer and LLM you will
    decode with; --set train.batch_size=N sets the examples per LLM forward
    pass and train.max_target_tokens cuts long rationales, as in `train`.

    \b
    Train, then decode with it (re-injection at the predicted boundaries):
      latentreason train-trigger --producer cot --task gsm8k --train-limit 256 --val-limit 32
      latentreason run --producer cot --task gsm8k --set decoder.name=reinject \\
          --set decoder.options.segment=classifier \\
          --set decoder.options.trigger=checkpoints/trigger-gsm8k.safetensors
    Also with decoder.name=compress; decoder.options.threshold=P overrides the
    stored threshold, and min_tokens / tokens still bound each segment's length.
    """
    from latentreason.api import train_trigger as train_trigger_api

    if val_limit is not None:
        sets = (*sets, f"train.val_limit={val_limit}")
    config = build_config(config_path, sets, **flags)
    report = train_trigger_api(config, label=label, epochs=epochs, lr=lr, out=out, progress=not quiet)
    chosen = report.chosen
    echo(f"examples: {report.train_examples} train, {report.val_examples} validation")
    echo(
        f"tokens: {report.train_tokens} train, {report.val_tokens} validation; "
        f"segment ends ({label}): {report.train_positive_rate:.1%} train, {report.val_positive_rate:.1%} validation"
    )
    echo(
        f"validation at threshold {chosen.threshold:.3f}: precision {chosen.precision:.3f}  recall {chosen.recall:.3f}  "
        f"F1 {chosen.f1:.3f}  (predicted boundaries {chosen.predicted_rate:.1%}; at 0.5: F1 {report.at_half.f1:.3f})"
    )
    echo(f"trigger: {report.path}")
