"""``run`` and ``compare``: evaluate methods on tasks and print their tables."""

from __future__ import annotations

import click

from latentreason.cli.common import (
    build_config,
    checkpoints_of,
    config_options,
    echo,
    friendly,
    quiet_option,
    seeds_of,
    split,
)


@click.command()
@config_options
@click.option("--seeds", help="Comma-separated seeds, e.g. 0,1,2: each cell runs once per seed (mean ± std).")
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    help="Results folder (default results/<task>-<producer>-<split>, or results/ for a comparison).",
)
@friendly
def run(config_path, sets, quiet, output, seeds, **flags):
    """Evaluate methods on tasks and write results folders.

    \b
    One method on one task:
      latentreason run --producer cot --task gsm8k --limit 5
    A comparison (comma-separated producers and/or tasks, optional seeds):
      latentreason run --producer cot,pause,assist-cot,coconut-frozen,softcot --task gsm8k,strategyqa \\
          --limit 50 --checkpoint softcot=checkpoints/softcot-gsm8k/last.safetensors

    Prints accuracy (strict: the \\boxed{} answer the prompt asks for; flexible:
    the last number / option / yes-no) with 95% intervals and the share of
    chains cut by --max-new-tokens (a warning above 5%). A comparison also
    writes comparison.md and comparison.csv, with each method's paired
    difference against the first (bootstrap interval, McNemar p) and the
    task's trivial baselines. Re-running into the same folder
    resumes: finished examples are not recomputed.
    """
    from latentreason.api import prepare
    from latentreason.evaluation.results import truncation_warning
    from latentreason.evaluation.runner import default_output, evaluate

    producers = split(flags.pop("producer"))
    tasks = split(flags.pop("task"))
    checkpoints = checkpoints_of(flags.pop("checkpoint"))
    config = build_config(
        config_path,
        sets,
        producer=producers[0] if producers else None,
        task=tasks[0] if tasks else None,
        checkpoint=checkpoints.get(producers[0] if producers else "*", checkpoints.get("*"))
        if len(producers) <= 1
        else None,
        **flags,
    )
    seed_list = seeds_of(seeds) or [config.seed]
    if len(producers) > 1 or len(tasks) > 1 or len(seed_list) > 1:
        from latentreason.assembly.registry import Registry
        from latentreason.evaluation.comparison import methods_from_names

        registry = Registry()
        methods = methods_from_names(config, producers or [config.producer.name], checkpoints, registry)
        print_comparison(methods, tasks or [config.data.task], seed_list, output or config.output_dir, quiet, registry)
        return
    prepared = prepare(config)  # data and checkpoints are checked before any model loads; notes go to stderr
    pipeline = prepared.pipeline
    output = output or default_output(pipeline)
    summary = evaluate(pipeline, prepared.examples, output, progress=not quiet)
    echo(summary.table())
    warning = truncation_warning(summary, pipeline.config.generation.max_new_tokens)
    if warning:
        echo(warning, err=True)
    echo(f"results: {output}")


def print_comparison(
    methods, tasks: list[str], seeds: list[int], output: str, quiet: bool, registry, reference=None, table=None
) -> None:
    """Run a comparison, then print the table it wrote (every finished cell of ``table``'s methods) and where it is."""
    from pathlib import Path

    from latentreason import distributed
    from latentreason.evaluation.comparison import compare

    compare(methods, tasks, seeds, output, reference=reference, table=table, progress=not quiet, registry=registry)
    if distributed.current().is_main:  # the rank that wrote it
        echo((Path(output) / "comparison.md").read_text().rstrip("\n"))
    echo(f"results: {output}  (comparison.md, comparison.csv; `latentreason report {output}` adds plots)")


@click.command()
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--only", help="Comma-separated method labels to run (default: all).")
@click.option(
    "--seeds",
    "only_seeds",
    help="Comma-separated seeds to run, e.g. 0 while seed 1 is still training (default: every method's seeds).",
)
@click.option(
    "--output", type=click.Path(file_okay=False), help="Results folder (default: the file's `output`, else results/)."
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a base field for every method, e.g. --set data.limit=10 (repeatable).",
)
@click.option("--quiet", is_flag=True, callback=quiet_option, help="No progress bars (the libraries' included).")
@friendly
def compare(experiment, only, only_seeds, output, sets, quiet):
    """Run every method of an EXPERIMENT file on its tasks and seeds; print one table.

    \b
    An experiment file names methods, each any run config on top of a shared base:
      base: {data: {task: gsm8k, limit: 50}, models: {dtype: bfloat16}}
      methods:
        cot: {producer: cot}
        softcot+compress: {producer: softcot, decoder: compress}
        compress-trained: {producer: cot, decoder: {name: compress, options: {pooling: attention}},
                           checkpoint: runs/compress-attn/last.safetensors}
    Example (the decoding-plugin study, see experiments/):
      latentreason compare experiments/compression-gsm8k.yaml

    Every problem in the file is reported before anything runs. Each cell is a
    results folder <output>/<task>-<label>-seed<seed>; re-running resumes.
    """
    from latentreason.assembly.registry import Registry
    from latentreason.config import parse_overrides
    from latentreason.evaluation.experiment import load_experiment

    registry = Registry()
    spec = load_experiment(
        experiment, parse_overrides(sets), split(only) or None, registry, seeds_of(only_seeds) or None
    )
    print_comparison(
        spec.methods, spec.tasks, spec.seeds, output or spec.output, quiet, registry, spec.reference, spec.table
    )
