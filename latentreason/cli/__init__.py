"""The ``latentreason`` command line: a thin layer over :mod:`latentreason.api`.

One module per group of commands (:mod:`.evaluate`: ``run``, ``compare``;
:mod:`.train`: ``train``, ``train-trigger``; :mod:`.measure`: ``loss``,
``thoughts``; :mod:`.catalog`: ``validate``, ``plugins``, ``tasks``,
``models``; :mod:`.reports`: ``report``, ``lm-eval``, ``lm-eval-check``;
:mod:`.bench`; :mod:`.setup`: ``vllm-setup``), with what they share in
:mod:`.common`. Heavy imports (torch, transformers) happen inside the
commands, so ``--help`` is instant.
"""

from __future__ import annotations

import click

from latentreason.cli import bench, catalog, evaluate, measure, reports, setup, train


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


for command in (
    evaluate.run,
    train.train,
    train.distill,
    measure.loss,
    measure.thoughts,
    evaluate.compare,
    catalog.validate,
    catalog.plugins,
    catalog.tasks,
    catalog.models,
    reports.report,
    reports.lm_eval_command,
    reports.lm_eval_check,
    bench.bench,
    setup.vllm_setup,
    train.train_trigger,
):
    main.add_command(command)
