"""What the command groups share: error reporting, ``--quiet``, the run-config options and printing on rank 0."""

from __future__ import annotations

import functools
import re
import sys
import traceback
from typing import Any

import click

from latentreason.errors import LatentReasonError, PluginFailure


def friendly(func):
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


def without_library_bars() -> None:
    """Turn off the libraries' progress bars until the command ends.

    transformers' ("Loading weights"), and through it vLLM's (a vLLM engine
    started with them off loads quietly and logs warnings only).
    """
    from transformers.utils import logging as hf_logging

    if hf_logging.is_progress_bar_enabled():
        hf_logging.disable_progress_bar()
        click.get_current_context().call_on_close(hf_logging.enable_progress_bar)


def quiet_option(_ctx: click.Context, _param: click.Parameter, quiet: bool) -> bool:
    """``--quiet``: no progress bars, the libraries' included."""
    if quiet:
        without_library_bars()
    return quiet


def config_options(func):
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
            help="Trained weights (.safetensors) to load; run: also PRODUCER=PATH,...",
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
        click.option(
            "--quiet", is_flag=True, callback=quiet_option, help="No progress bars (the libraries' included)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_config(config_path: str | None, sets: tuple[str, ...], **flags: Any):
    from latentreason.assembly.registry import Registry
    from latentreason.assembly.resolve import load_checked
    from latentreason.config import merge, parse_overrides

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


def echo(message: str, *, err: bool = False) -> None:
    """Print on rank 0 only (under torchrun every rank runs the command and has the same result)."""
    from latentreason import distributed

    if distributed.current().is_main:
        click.echo(message, err=err)


def split(value: str | None) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``; None -> ``[]``."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def seeds_of(value: str | None) -> list[int]:
    """``"0,1"`` -> ``[0, 1]``; None -> ``[]``.

    Raises:
        click.BadParameter: an item that is not an integer.
    """
    items = split(value)
    bad = [item for item in items if not re.fullmatch(r"-?[0-9]+", item)]
    if bad:
        raise click.BadParameter(f"comma-separated integers, got {', '.join(map(repr, bad))}", param_hint="'--seeds'")
    return [int(item) for item in items]


def checkpoints_of(value: str | None) -> dict[str, str]:
    """``"PATH"`` or ``"producer=PATH,other=PATH"`` -> ``{producer: path}`` (``"*"`` for a bare path)."""
    out = {}
    for item in split(value):
        name, sep, path = item.partition("=")
        out.update({name: path} if sep else {"*": item})
    return out
