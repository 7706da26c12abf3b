"""``report``, ``lm-eval`` and ``lm-eval-check``: results rendered, and lm-evaluation-harness over them."""

from __future__ import annotations

import sys

import click

from latentreason.cli.common import friendly


@click.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["markdown", "lm-eval"]),
    default="markdown",
    show_default=True,
    help="markdown: report.md and report.html with plots; lm-eval: lm-eval's output layout "
    "(results_<date>.json, samples_<task>_<date>.jsonl per method and seed) in RESULTS_DIR/lm-eval.",
)
@friendly
def report(results_dir, output_format):
    """Render RESULTS_DIR as report.md and report.html with plots, or export it for lm-eval's tooling.

    RESULTS_DIR is a run or a comparison folder; a training folder (with
    history.json) gets its loss curve as loss.png.
    """
    from pathlib import Path

    from latentreason.evaluation.report import plot_training, render_report

    if output_format == "lm-eval":
        from latentreason.interop.lm_eval_export import export_lm_eval

        for path in export_lm_eval(results_dir):
            click.echo(f"lm-eval: {path}")
        return
    history = Path(results_dir) / "history.json"
    if history.exists():
        plot_training(history, Path(results_dir) / "loss.png")
        click.echo(f"loss curve: {Path(results_dir) / 'loss.png'}")
        return
    md, page = render_report(results_dir)
    click.echo(md.read_text().split("\n\n")[1])
    click.echo(f"report: {md} and {page}")


@click.command(
    "lm-eval",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@friendly
def lm_eval_command(args):
    """Run lm-evaluation-harness, with latentreason methods as its model "latentreason".

    \b
    Every argument goes to lm-eval's own command line (`latentreason lm-eval --help`
    is lm-eval's help). The task folder of this project (gsm8k_latentreason,
    aqua_latentreason, strategyqa_latentreason: lm-eval's prompts and scorers over
    the shipped data, offline) is added as --include_path unless one is given:
      latentreason lm-eval --model latentreason \\
          --model_args producer=softcot,instruction=gsm8k,batch_size=16 \\
          --tasks gsm8k_latentreason --limit 50 --gen_kwargs max_gen_toks=320
    See docs/lm-eval.md (model arguments, loglikelihood tasks, lm-eval's own tasks).
    """
    from pathlib import Path

    import latentreason.interop.lm_eval_model  # noqa: F401  (registers the model "latentreason" with lm-eval)
    from latentreason.interop import lm_eval_tasks

    argv = list(args)
    if argv and not any(a == "--include_path" or a.startswith("--include_path=") for a in argv):
        argv += ["--include_path", str(Path(lm_eval_tasks.__file__).parent)]
    from lm_eval.__main__ import cli_evaluate  # after the model module, whose import explains a missing lm-eval

    saved, sys.argv = sys.argv, ["lm-eval", *argv]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved


@click.command("lm-eval-check")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@friendly
def lm_eval_check(results_dir):
    """Score RESULTS_DIR's generations again with lm-eval's GSM8K scorers; print where they disagree with ours.

    lm-eval's strict-match and flexible-extract filters and its exact_match
    metric (from its gsm8k-cot-zeroshot task) read the same generations as
    this project's strict and flexible answers. Every run with numeric answers
    under RESULTS_DIR is checked; a run still being written is read as it is.
    """
    from latentreason.interop.lm_eval_scoring import check_folder

    for run, check in check_folder(results_dir):
        click.echo(f"## {run}\n\n{check.markdown()}\n")
