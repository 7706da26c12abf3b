"""The models of a run, loaded on first use through the model-loader hook."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import torch

from latentreason.config import AdapterConfig, ModelsConfig
from latentreason.errors import LatentReasonError
from latentreason.models.adapter import Adapter
from latentreason.models.loading import load_hf, resolve_name
from latentreason.models.quantization import int8_twin
from latentreason.models.spec import LoadedModel, ModelSpec


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags of the first CPU listed in ``cpuinfo`` (empty where there is no such file)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return set(line.partition(":")[2].split())


NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags of a native bf16 matrix multiply; without one, bf16 is emulated and slower than fp32."""


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name as ``cpuinfo`` gives it (else what :mod:`platform` knows)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    line = next((line for line in text.splitlines() if line.startswith("model name")), "")
    return line.partition(":")[2].strip() or platform.processor() or platform.machine()


def machine_label(device: str, cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """What ran a computation, for the record beside its speed.

    On CUDA the GPU's name; on a CPU its model name, whether it has a
    native bf16 matrix multiply (:data:`NATIVE_BF16_FLAGS`) and torch's
    thread count; both with torch's version. Speeds are comparable only
    between records with the same label.

    Args:
        device: the resolved device (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        cpuinfo: where the CPU describes itself.
    """
    if device.startswith("cuda"):
        where = torch.cuda.get_device_name(torch.device(device))
    else:
        native = [f for f in NATIVE_BF16_FLAGS if f in cpu_flags(cpuinfo)]
        bf16 = ", ".join(native) if native else "no native bf16"
        where = f"{cpu_name(cpuinfo)} ({bf16}), {torch.get_num_threads()} threads"
    return f"{where}, torch {torch.__version__}"


def resolve_dtype(dtype: str, device: str, flags: set[str] | None = None) -> tuple[str, str]:
    """The weight dtype ``models.dtype`` stands for on this machine, and why.

    ``"auto"`` is bfloat16 on CUDA and on CPUs with a native bf16 matrix
    multiply (:data:`NATIVE_BF16_FLAGS` in ``/proc/cpuinfo``), float32
    otherwise; other values stand for themselves.

    Args:
        dtype: the configured dtype.
        device: the resolved device.
        flags: CPU flags (default: this machine's, see :func:`cpu_flags`).

    Returns:
        ``(dtype, reason)``.
    """
    if dtype != "auto":
        return dtype, "as configured"
    if device.startswith("cuda"):
        return "bfloat16", "auto: CUDA"
    found = [f for f in NATIVE_BF16_FLAGS if f in (cpu_flags() if flags is None else flags)]
    if found:
        return "bfloat16", f"auto: the CPU has native bf16 ({', '.join(found)})"
    return "float32", "auto: the CPU has no native bf16 (no amx_bf16 or avx512_bf16), where bf16 is slower"


def bf16_slowdown(rows: int = 256, width: int = 896, repeats: int = 2) -> float:
    """How many times longer a bf16 matrix multiply takes than a float32 one on this CPU, measured now.

    The shapes are a training batch's rows through one of the 0.5B LLM's
    square projections; the measurement takes about a second where bf16 is emulated.

    Args:
        rows: rows of the activations.
        width: the projection's input and output width.
        repeats: the fastest of this many multiplies counts, per dtype.
    """
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(rows, width, generator=generator), torch.randn(width, width, generator=generator)

    def fastest(dtype: torch.dtype) -> float:
        x, w = a.to(dtype), b.to(dtype)
        x @ w  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            x @ w
            times.append(time.perf_counter() - start)
        return min(times)

    return fastest(torch.bfloat16) / max(fastest(torch.float32), 1e-9)


def dtype_warning(dtype: str, device: str, flags: set[str] | None = None) -> str | None:
    """A one-line warning when the resolved ``dtype`` is bf16 on a CPU without native bf16, with its measured cost.

    ``auto`` never picks bf16 there (:func:`resolve_dtype`); this is for
    ``--dtype bfloat16`` asked for explicitly.

    Args:
        dtype: the resolved dtype.
        device: the resolved device.
        flags: CPU flags (default: this machine's).

    Returns:
        The warning, or None where bf16 is native (or not asked for).
    """
    if dtype != "bfloat16" or not device.startswith("cpu"):
        return None
    if any(f in (cpu_flags() if flags is None else flags) for f in NATIVE_BF16_FLAGS):
        return None
    return (
        f"warning: bf16 is ~{bf16_slowdown():.1f}x slower than float32 on this CPU ({cpu_name()}: no amx_bf16 or "
        "avx512_bf16, so bf16 is emulated; measured just now on a matrix multiply); --dtype float32 or auto is faster."
    )


class Runtime:
    """Holds the assistant and the LLM; each is loaded when first asked for.

    A run whose producer never touches the assistant (plain CoT) never loads
    it; an assistant that names the LLM's model is the loaded LLM itself.

    Args:
        models: which models to load and how.
        load: loads one model (the plugins' model-loader hook,
            :meth:`latentreason.assembly.registry.Registry.load_model`); default:
            the built-in ``transformers`` loader alone.
        adapter: a LoRA adapter to inject into the LLM when it loads (see
            :mod:`latentreason.models.adapter`), or None.
        llm: an already loaded LLM (skips loading; e.g. tests, notebooks).
        assistant: an already loaded assistant.

    Attributes:
        adapter: the LLM's :class:`~latentreason.models.adapter.Adapter`, once
            the LLM is loaded (None without one).
    """

    def __init__(
        self,
        models: ModelsConfig | None = None,
        load: Callable[[ModelSpec], LoadedModel] | None = None,
        adapter: AdapterConfig | None = None,
        *,
        llm: LoadedModel | None = None,
        assistant: LoadedModel | None = None,
    ) -> None:
        self.models = models or ModelsConfig()
        self.load = load or load_hf
        self.adapter_config = adapter
        self.adapter: Adapter | None = None
        if llm is not None and adapter is not None:
            self.adapter = Adapter(llm.model, adapter)
        self.device = resolve_device(self.models.device)
        if llm is not None:
            self.__dict__["llm"] = llm
        if assistant is not None:
            self.__dict__["assistant"] = assistant

    def _load(self, name: str, device_map: str | None = None, adapter: AdapterConfig | None = None) -> LoadedModel:
        dtype, _ = resolve_dtype(self.models.dtype, self.device)
        spec = ModelSpec(
            name=name,
            dtype=dtype,
            device=self.device,
            trust_remote_code=self.models.trust_remote_code,
            device_map=device_map,
        )
        loaded = self.load(spec)
        if adapter is not None:  # before the int8 twin, which then shares the adapter's (float) branches
            self.adapter = Adapter(loaded.model, adapter)
        if self.models.quantize == "int8":
            loaded.int8 = int8_twin(loaded.model)
        return loaded

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
        return self._load(self.models.llm, self.models.device_map, self.adapter_config)

    def assistant_is_llm(self) -> bool:
        """Whether ``models.assistant`` names the LLM's model (the same alias, hub id, folder or file)."""
        if "assistant" in self.__dict__:
            return self.__dict__["assistant"] is self.__dict__.get("llm")
        return resolve_name(self.models.assistant) == resolve_name(self.models.llm)

    @cached_property
    def assistant(self) -> LoadedModel:
        """The frozen assistant model; the LLM itself (loaded once) when ``models.assistant`` names the LLM.

        Raises:
            LatentReasonError: the assistant is the LLM and the run trains an
                adapter on it, which the assistant would then read through.
        """
        if not self.assistant_is_llm():
            return self._load(self.models.assistant)
        if self.adapter_config is not None:
            raise LatentReasonError(
                f"models.assistant names the LLM ({self.models.llm!r}) and the run trains a LoRA adapter on it: the "
                "assistant would read through the adapter being trained. Use another assistant or drop the adapter."
            )
        return self.llm
