"""The frozen models: what to load (:mod:`.spec`), the PyPI model zoo (:mod:`.zoo`),
loading with ``transformers`` (:mod:`.loading`), a run's models (:mod:`.runtime`)
and int8 decoding (:mod:`.quantization`)."""

from latentreason.models.loading import ModelSource, load_hf, resolve_name
from latentreason.models.spec import DTYPES, LoadedModel, ModelSpec
from latentreason.models.zoo import KNOWN_MODELS, ModelInfo, cache_root, fetch_model, is_cached, list_models, model_dir

__all__ = [
    "DTYPES",
    "KNOWN_MODELS",
    "LoadedModel",
    "ModelInfo",
    "ModelSource",
    "ModelSpec",
    "cache_root",
    "fetch_model",
    "is_cached",
    "list_models",
    "load_hf",
    "model_dir",
    "resolve_name",
]
