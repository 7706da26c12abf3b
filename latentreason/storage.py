"""Trained weights as safetensors, written atomically and checked on load.

Only safetensors are ever read (no pickle). A checkpoint holds the tensors of
each trainable component under ``<component>.<parameter>`` and, in its
metadata, which components and options produced it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from latentreason.errors import LatentReasonError

FORMAT = "latentreason/1"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the temp file over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_weights(path: str | Path, modules: dict[str, nn.Module], meta: dict[str, Any]) -> Path:
    """Save the parameters of ``modules`` (``{"projector": module, ...}``) atomically.

    Args:
        path: target ``.safetensors`` file.
        modules: components by name.
        meta: JSON-serialisable description (component names, options, sizes).
    """
    path = Path(path)
    tensors = {
        f"{name}.{key}": value.detach().to("cpu").contiguous()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }
    header = {"format": FORMAT, "meta": json.dumps(meta, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata dict stored by :func:`save_weights`."""
    with _open(Path(path)) as f:
        return json.loads((f.metadata() or {}).get("meta", "{}"))


def foreign_adapter(path: str | Path, llm: str) -> str | None:
    """Why a checkpoint's LoRA adapter does not fit the LLM ``llm`` (None if it holds none or fits).

    An adapter is a change to one LLM's weights; on another LLM of the same
    shapes it would load without complaint and compute nonsense. Names that
    are folders are compared as resolved paths.
    """
    if "adapter" not in stored_components(path):
        return None
    made_for = read_meta(path).get("components", {}).get("llm")
    if made_for is None or _same_model(made_for, llm):
        return None
    return (
        f"Checkpoint {str(path)!r} holds a LoRA adapter trained on the LLM {made_for!r}, not this run's {llm!r}; an "
        "adapter only fits the weights it was trained on. Set models.llm to that LLM, or train an adapter for this one."
    )


def _same_model(a: str, b: str) -> bool:
    """Whether two model names are the same model (folders by their resolved path)."""
    if a == b:
        return True
    first, second = Path(a).expanduser(), Path(b).expanduser()
    return first.is_dir() and second.is_dir() and first.resolve() == second.resolve()


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex): which weights a run used, whatever their path."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unfinished_training(meta: dict[str, Any]) -> str | None:
    """Why a checkpoint (its :func:`read_meta`) is a mid-training save (``"step 100 of 250"``), or None if finished or unknown."""
    step, total = meta.get("step"), meta.get("total_steps")
    return f"step {step} of {total}" if isinstance(step, int) and isinstance(total, int) and step < total else None


def stored_components(path: str | Path) -> set[str]:
    """The components (``projector``, ``decoder``, ...) whose tensors a checkpoint holds."""
    with _open(Path(path)) as f:
        return {key.split(".", 1)[0] for key in f.keys()}


def _open(path: Path):
    if not path.is_file():
        raise LatentReasonError(f"Checkpoint {str(path)!r} does not exist.")
    if path.suffix != ".safetensors":
        raise LatentReasonError(
            f"Checkpoint {str(path)!r} is not a .safetensors file; only safetensors are loaded (never pickle)."
        )
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError) as exc:
        raise LatentReasonError(f"Checkpoint {str(path)!r} is not a readable safetensors file: {exc}.") from exc


def load_weights(path: str | Path, modules: dict[str, nn.Module]) -> dict[str, Any]:
    """Load weights saved by :func:`save_weights` into ``modules``.

    Raises:
        LatentReasonError: missing or unexpected tensors, or any tensor whose
            shape differs from the module's (all listed at once).

    Returns:
        The checkpoint's metadata.
    """
    path = Path(path)
    with _open(path) as f:
        stored = {key: f.get_tensor(key) for key in f.keys()}
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    problems = []
    states = {}
    for name, module in modules.items():
        expected = module.state_dict()
        state = {}
        for key, value in expected.items():
            full = f"{name}.{key}"
            if full not in stored:
                problems.append(f"missing tensor {full} (expected shape {tuple(value.shape)})")
            elif stored[full].shape != value.shape:
                problems.append(f"{full} has shape {tuple(stored[full].shape)} but this run needs {tuple(value.shape)}")
            else:
                state[key] = stored[full]
        states[name] = state
    known = {f"{n}.{k}" for n, m in modules.items() for k in m.state_dict()}
    problems += [f"unexpected tensor {k}" for k in sorted(set(stored) - known)]
    if problems:
        made_by = f" It was made for {meta.get('components')}." if meta.get("components") else ""
        shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
        raise LatentReasonError(
            f"Checkpoint {str(path)!r} does not fit this run: " + "; ".join(shown) + f".{made_by} "
            "Check the models, the producer, the projector and the adapter options."
        )
    for name, module in modules.items():
        with torch.no_grad():
            module.load_state_dict(states[name])
    return meta
