"""The hook specifications: the whole public surface a plugin implements.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose
names are the hooks below. It is found through the ``latentreason`` entry-point
group of an installed distribution, for example in its ``pyproject.toml``::

    [project.entry-points.latentreason]
    myplugin = "my_package.plugin"

Registration hooks return a mapping from a name to a component class; names
must be unique across all installed plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from latentreason.components.decoder import DecodingController
    from latentreason.components.evaluator import Evaluator
    from latentreason.components.injector import Injector
    from latentreason.components.producer import ThoughtProducer
    from latentreason.components.projector import Projector
    from latentreason.components.task import TaskSpec
    from latentreason.models.spec import LoadedModel, ModelSpec

PROJECT = "latentreason"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def latentreason_producers() -> dict[str, type[ThoughtProducer]]:
    """Register thought producers (what produces soft thoughts or hints).

    Returns:
        ``{name: ThoughtProducer subclass}``.
    """


@hookspec
def latentreason_projectors() -> dict[str, type[Projector]]:
    """Register projectors (maps thoughts into the LLM's embedding space).

    Returns:
        ``{name: Projector subclass}``.
    """


@hookspec
def latentreason_injectors() -> dict[str, type[Injector]]:
    """Register injectors (build the LLM's input embeddings around thoughts).

    Returns:
        ``{name: Injector subclass}``.
    """


@hookspec
def latentreason_evaluators() -> dict[str, type[Evaluator]]:
    """Register evaluators (extract and score answers).

    Returns:
        ``{name: Evaluator subclass}``.
    """


@hookspec
def latentreason_decoders() -> dict[str, type[DecodingController]]:
    """Register decoding controllers (steer the KV cache while the LLM writes).

    Returns:
        ``{name: DecodingController subclass}``.
    """


@hookspec
def latentreason_tasks() -> dict[str, TaskSpec]:
    """Register tasks (datasets with prompts and a default evaluator).

    Returns:
        ``{name: TaskSpec}``.
    """


@hookspec(firstresult=True)
def latentreason_load_model(spec: ModelSpec) -> LoadedModel | None:
    """Load a model and its tokenizer; the first non-None result wins.

    Plugins can serve their own model sources (a model zoo, a remote store).
    The built-in Hugging Face loader runs last.

    Args:
        spec: what to load (identifier, dtype, device, trust_remote_code).

    Returns:
        The loaded model, or None to let the next loader try.
    """
