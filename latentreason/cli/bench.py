"""``bench``: measure speed (see :mod:`latentreason.bench`)."""

from __future__ import annotations

import click

from latentreason.cli.common import friendly, split, without_library_bars


@click.command()
@click.option("--llm", help="LLM: alias, local folder, .gguf file or hub id (default: the default LLM).")
@click.option("--assistant", help="SoftCoT assistant model (default: the default assistant).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="GSM8K test examples in every measurement.",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=2),
    default=32,
    show_default=True,
    help="Exact length of every chain (answer stopping and end-of-turn are disabled).",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="The batch compared with batch 1."
)
@click.option(
    "--train-steps",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Projector training steps (batch 4) to time.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run every timed answer this often and keep the fastest (2-3 on a machine shared with other jobs).",
)
@click.option(
    "--threads", type=click.IntRange(min=1), help="torch intra-op threads (default: torch's choice, one per core)."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="results/bench.json",
    show_default=True,
    help="JSON file with every measurement.",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Tiny random models instead of the default pair: checks the harness in seconds (the end-to-end section "
    "without its vLLM variant); the numbers mean nothing.",
)
@click.option(
    "--sections",
    default="micro",
    show_default=True,
    help="Comma-separated: micro (fixed-length chains per dtype, a few minutes), end-to-end (whole evaluations "
    "of cot and softcot, 0.1 defaults vs the fast settings; about half an hour on a 2-core CPU), decoders "
    "(the decoding loop with and without a decoding controller; a few minutes) and/or latent-prefix (CODI's "
    "text after its latent prefix on the transformers engine and on vLLM; about 15 minutes).",
)
@click.option(
    "--e2e-limit",
    type=click.IntRange(min=1),
    default=48,
    show_default=True,
    help="GSM8K test problems of the end-to-end section.",
)
@click.option(
    "--e2e-max-new-tokens",
    type=click.IntRange(min=2),
    default=320,
    show_default=True,
    help="Token cap of the end-to-end section.",
)
@click.option(
    "--latent-limit",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="GSM8K test problems of the latent-prefix section.",
)
@click.option(
    "--latent-checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    help="A trained CODI checkpoint (LoRA rank 8 on q/k/v/o, as experiments/latent-llm-gsm8k.yaml trains) for the "
    "latent-prefix section (default: its adapter and step map untrained).",
)
@friendly
def bench(
    llm,
    assistant,
    limit,
    max_new_tokens,
    batch_size,
    train_steps,
    repeats,
    threads,
    output,
    quick,
    sections,
    e2e_limit,
    e2e_max_new_tokens,
    latent_limit,
    latent_checkpoint,
):
    """Measure speed: SoftCoT vs CoT, batching, decoding vs memory bandwidth, training, whole evaluations.

    \b
    --sections micro (the default; a few minutes on a 2-core CPU):
      - SoftCoT vs zero-shot CoT time per example (same LLM, examples, decode length)
      - SoftCoT examples/s at --batch-size vs batch 1, in float32, bfloat16 and int8 decoding
      - decode tokens/s at batch 1 vs the memory-bandwidth bound of this machine
      - projector training examples/s, and where one example's time goes
    --sections end-to-end (about half an hour):
      - cot and softcot on --e2e-limit GSM8K problems: the 0.1 defaults (float32, static
        batches of 8) vs the fast settings (dtype auto, continuous batching, int8 on the
        CPU) and vLLM if set up; examples/s, start-up apart, accuracy and its paired difference
    --sections decoders (a few minutes):
      - cot on 16 GSM8K problems, 128 tokens each, at --batch-size on the transformers
        engine, with no decoder, compress (mean-pooled gists) and soft-thinking:
        tokens/s of each against plain decoding, in float32
    --sections latent-prefix (about 15 minutes):
      - codi (K = 6 latent thoughts, LoRA) on --latent-limit GSM8K problems, the
        transformers engine vs vLLM after the same prefix: examples/s, start-up
        apart, and how many examples got the identical greedy text
    Prints tables and writes every number to --output. See docs/performance.md.
    """
    import json
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from latentreason.bench.run import format_report, run_bench
    from latentreason.bench.settings import BenchSettings, quick_models

    without_library_bars()
    settings = BenchSettings(
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        train_steps=train_steps,
        repeats=repeats,
        threads=threads,
        sections=tuple(split(sections)),
        e2e_limit=e2e_limit,
        e2e_max_new_tokens=e2e_max_new_tokens,
        latent_limit=latent_limit,
        latent_checkpoint=latent_checkpoint,
    )
    unknown = set(settings.sections) - {"micro", "end-to-end", "decoders", "latent-prefix"}
    if unknown:
        raise click.BadParameter(
            f"unknown section(s) {', '.join(sorted(unknown))}; use micro, end-to-end, decoders and/or latent-prefix",
            param_hint="--sections",
        )
    with tempfile.TemporaryDirectory(prefix="latentreason-bench-") as tmp:
        if quick:
            tiny_llm, tiny_assistant = quick_models(tmp)
            settings = replace(settings, llm=tiny_llm, assistant=tiny_assistant, bandwidth_mib=128, vllm=False)
        settings = replace(settings, llm=llm or settings.llm, assistant=assistant or settings.assistant)
        report = run_bench(settings, log=lambda message: click.echo(message, err=True))
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    click.echo(format_report(report))
    click.echo(f"results: {path}")
