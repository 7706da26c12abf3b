"""The core's own plugin: tasks, evaluators, the identity and latent-map projectors, the
placeholder injector and the Hugging Face model loader.

It is registered through the same hooks as any installed plugin.
"""

from __future__ import annotations

from latentreason.hooks.specs import hookimpl


@hookimpl
def latentreason_tasks():
    """Register the built-in tasks."""
    from latentreason.builtins.tasks import BUILTIN_TASKS

    return BUILTIN_TASKS


@hookimpl
def latentreason_evaluators():
    """Register the number, choice and yes/no evaluators."""
    from latentreason.builtins.evaluators import BUILTIN_EVALUATORS

    return BUILTIN_EVALUATORS


@hookimpl
def latentreason_projectors():
    """Register the identity projector and the latent prefix's step map."""
    from latentreason.builtins.identity import IdentityProjector
    from latentreason.builtins.latent_map import LatentMap

    return {"identity": IdentityProjector, "latent-map": LatentMap}


@hookimpl
def latentreason_injectors():
    """Register the placeholder injector."""
    from latentreason.builtins.placeholder import PlaceholderInjector

    return {"placeholder": PlaceholderInjector}


@hookimpl(trylast=True)
def latentreason_load_model(spec):
    """Load from a local folder, a GGUF file, a known alias or the hub."""
    from latentreason.models.loading import load_hf

    return load_hf(spec)
