"""Timing helpers and hardware probes: wall time, other processes' load, memory bandwidth, bytes per decoded token."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from latentreason.models.quantization import Int8Linear
from latentreason.models.spec import LoadedModel

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Call ``fn`` once; return its result and the wall time in seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn``, in seconds (least disturbed by other load)."""
    return min(timed(fn)[1] for _ in range(repeats))


class CpuShare:
    """Context manager: how many cores *other* processes kept busy meanwhile.

    Reads the machine's busy time from ``/proc/stat`` and subtracts the CPU
    time of this process and of its finished children (vLLM's worker and its
    engine). ``others`` stays None where ``/proc/stat`` is missing.

    Attributes:
        load_at_start: the 1-minute load average on entry.
        others: mean cores used by other processes while open.
    """

    def __init__(self) -> None:
        self.load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self.others: float | None = None

    @staticmethod
    def _busy_s() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def __enter__(self) -> CpuShare:
        self._start = (time.perf_counter(), self._busy_s(), self._own_s())
        return self

    def __exit__(self, *exc) -> None:
        wall0, busy0, own0 = self._start
        busy1 = self._busy_s()
        wall = time.perf_counter() - wall0
        if busy0 is not None and busy1 is not None and wall > 0:
            self.others = max(0.0, ((busy1 - busy0) - (self._own_s() - own0)) / wall)


def memory_bandwidth(mib: int = 512, repeats: int = 5, device: str = "cpu") -> dict[str, float]:
    """This machine's memory bandwidth, measured with large torch tensors.

    Args:
        mib: buffer size; far larger than the CPU caches.
        repeats: the best of this many passes counts.
        device: where the buffer lives.

    Returns:
        ``read_gb_s`` (a sum over the buffer: what reading weights costs) and
        ``copy_gb_s`` (bytes read plus written by a copy), in 1e9 bytes/s.
    """
    n = mib * 2**20 // 4
    source = torch.ones(n, dtype=torch.float32, device=device)  # (n,), pages touched
    target = torch.empty_like(source)
    sync = torch.cuda.synchronize if source.is_cuda else (lambda: None)

    def read() -> None:
        source.sum()
        sync()

    def copy() -> None:
        target.copy_(source)
        sync()

    copy()
    size = n * 4
    return {
        "read_gb_s": size / best_time(read, repeats) / 1e9,
        "copy_gb_s": 2 * size / best_time(copy, repeats) / 1e9,
        "buffer_mib": float(mib),
    }


def decode_bytes(llm: LoadedModel, context: int) -> dict[str, Any]:
    """Bytes one batch-1 decoding step has to read from memory.

    Every parameter of the model that runs decoding steps (the int8 twin with
    ``models.quantize: int8``: its int8 weights and their scales) is read
    once per step, except the input-embedding matrix,
    of which only the new token's row is read (when the LM head is tied to it,
    the head reads the whole matrix and it counts once). The KV cache of
    ``context`` positions is read too.

    Args:
        llm: the model.
        context: cached positions at the step (prompt plus tokens so far).

    Returns:
        ``weight_bytes``, ``kv_bytes``, ``bytes`` (their sum), ``tied`` and
        ``embedding_bytes`` (the input-embedding matrix, read one row at a time).
    """
    model = llm.stepper
    unique = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    embedding = model.get_input_embeddings().weight  # (V, d)
    head = model.get_output_embeddings()
    tied = isinstance(head, torch.nn.Linear) and head.weight.data_ptr() == embedding.data_ptr()
    embedding_bytes = embedding.numel() * embedding.element_size()
    weights = sum(unique.values()) + sum(m.weight_bytes for m in model.modules() if isinstance(m, Int8Linear))
    if not tied:
        weights += embedding.shape[1] * embedding.element_size() - embedding_bytes  # one row instead of the matrix
    config = model.config.get_text_config()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    kv = 2 * config.num_hidden_layers * kv_heads * head_dim * embedding.element_size() * context  # keys and values
    return {
        "weight_bytes": weights,
        "kv_bytes": kv,
        "bytes": weights + kv,
        "tied": tied,
        "embedding_bytes": embedding_bytes,
    }
