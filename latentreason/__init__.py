"""latentreason: latent chain-of-thought reasoning with frozen LLMs, as plugins.

The public API::

    load_config, RunConfig       configuration (pydantic)
    prepare, Pipeline            a run prepared in one place; the data path: producer -> projector -> injector -> generate -> evaluator
    run, train, train_trigger    evaluate or train a configured method; train the segment-boundary trigger
    loss                         a method's gold-rationale loss (as validation computes it), without training
    compare, load_experiment     several methods, tasks and seeds in one table
    Registry, hookimpl           plugins
"""

from latentreason.api import checkpoint_dir, loss, prepare, run, train, train_trigger
from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.registry import Registry
from latentreason.config import RunConfig, load_config
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.evaluation.comparison import compare
from latentreason.evaluation.experiment import load_experiment
from latentreason.hooks.specs import hookimpl

__all__ = [
    "ConfigError",
    "LatentReasonError",
    "Pipeline",
    "Registry",
    "RunConfig",
    "checkpoint_dir",
    "compare",
    "hookimpl",
    "load_config",
    "load_experiment",
    "loss",
    "prepare",
    "run",
    "train",
    "train_trigger",
]
__version__ = "0.2.0"
