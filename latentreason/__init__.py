"""latentreason: latent chain-of-thought reasoning with frozen LLMs, as plugins.

The public API::

    load_config, RunConfig       configuration (pydantic)
    build_pipeline, Pipeline     the data path: producer -> projector -> injector -> generate -> evaluator
    run, train                   evaluate or train a configured method
    Registry, hookimpl           plugins
"""

from latentreason.api import build_pipeline, checkpoint_dir, run, train
from latentreason.config import RunConfig, load_config
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.hookspecs import hookimpl
from latentreason.pipeline import Pipeline
from latentreason.registry import Registry

__all__ = [
    "ConfigError",
    "LatentReasonError",
    "Pipeline",
    "Registry",
    "RunConfig",
    "build_pipeline",
    "checkpoint_dir",
    "hookimpl",
    "load_config",
    "run",
    "train",
]
__version__ = "0.1.0"
