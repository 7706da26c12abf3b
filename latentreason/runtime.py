"""The models of a run, loaded on first use through the model-loader hook."""

from __future__ import annotations

import os
from functools import cached_property

import torch

from latentreason.config import ModelsConfig
from latentreason.errors import LatentReasonError
from latentreason.models import LoadedModel, ModelSpec
from latentreason.registry import Registry


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Runtime:
    """Holds the assistant and the LLM; each is loaded when first asked for.

    A run whose producer never touches the assistant (plain CoT) never loads it.

    Args:
        models: which models to load and how.
        registry: where the model-loader hook lives.
        llm: an already loaded LLM (skips loading; e.g. tests, notebooks).
        assistant: an already loaded assistant.
    """

    def __init__(
        self,
        models: ModelsConfig | None = None,
        registry: Registry | None = None,
        *,
        llm: LoadedModel | None = None,
        assistant: LoadedModel | None = None,
    ) -> None:
        self.models = models or ModelsConfig()
        self.registry = registry or Registry()
        self.device = resolve_device(self.models.device)
        if llm is not None:
            self.__dict__["llm"] = llm
        if assistant is not None:
            self.__dict__["assistant"] = assistant

    def _load(self, name: str, device_map: str | None = None) -> LoadedModel:
        spec = ModelSpec(
            name=name,
            dtype=self.models.dtype,
            device=self.device,
            trust_remote_code=self.models.trust_remote_code,
            device_map=device_map,
        )
        return self.registry.load_model(spec)

    def model_name(self, role: str) -> str:
        """The name of the ``"llm"`` or ``"assistant"``: the loaded model's if loaded, else the configured one."""
        loaded = self.__dict__.get(role)
        return loaded.name if loaded is not None else getattr(self.models, role)

    @cached_property
    def llm(self) -> LoadedModel:
        """The frozen reasoning LLM (sharded over the GPUs with ``models.device_map``)."""
        if self.models.device_map and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
            raise LatentReasonError(
                "models.device_map shards one LLM over the GPUs of a single process, but torchrun started several "
                "processes, each with a full copy on its own GPU; use one or the other (see docs/distributed.md)."
            )
        return self._load(self.models.llm, self.models.device_map)

    @cached_property
    def assistant(self) -> LoadedModel:
        """The frozen assistant model."""
        return self._load(self.models.assistant)
