"""Peak memory of a block of work: GPU allocations on CUDA, else process RSS."""

from __future__ import annotations

import os
import threading

import torch


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Context manager measuring peak memory in GiB while it is open.

    On CUDA it reports ``torch.cuda.max_memory_allocated`` (reset on entry);
    on the CPU it samples the process's resident set size every ``interval``
    seconds (the models' weights included).

    Attributes:
        peak_gib: the peak, set on exit.
        kind: ``"cuda"`` or ``"rss"``.
    """

    def __init__(self, device: str = "cpu", interval: float = 0.05) -> None:
        self.cuda = device.startswith("cuda") and torch.cuda.is_available()
        self.kind = "cuda" if self.cuda else "rss"
        self.interval = interval
        self.peak_gib = 0.0
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            self._peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            self._peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
        self.peak_gib = self._peak / 2**30
