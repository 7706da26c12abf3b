"""One vLLM engine per machine: a lock file under the cache folder names the run that holds it.

A vLLM engine takes most of a small machine (about 9 GB and every core for
the default pair on the CPU), so a second one started beside it would make
both crawl or be killed for memory. The first run that starts an engine takes
an exclusive ``flock`` on ``<cache>/vllm-engine.lock`` and writes its pid, its
command and its engine workers' pids into the file; a second run fails at
once, naming that run and the memory its engine holds. The kernel releases
the lock when every process holding it has ended (the run and its worker, which
inherits it), so a killed run leaves no stale lock.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

from latentreason.errors import LatentReasonError
from latentreason.models.zoo import cache_root

LOCK_NAME = "vllm-engine.lock"

_held: int | None = None
"""This process's descriptor of the lock file, open (and locked) for the rest of the process once taken."""


def lock_path() -> Path:
    """``<cache>/vllm-engine.lock``."""
    return cache_root() / LOCK_NAME


def hold_engine_lock() -> int:
    """Take the machine's vLLM engine lock for this process (once; later calls return the same descriptor).

    Returns:
        The lock file's descriptor, for the engine's worker to inherit.

    Raises:
        LatentReasonError: another process holds it; the message names its pid,
            its command and the memory its engine holds.
    """
    import fcntl

    global _held
    if _held is not None:
        return _held
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(fd)
        os.close(fd)
        raise LatentReasonError(_busy_message(holder, path)) from None
    _held = fd
    _write(fd, {"pid": os.getpid(), "command": " ".join(sys.argv), "workers": []})
    return fd


def record_worker(pid: int) -> None:
    """Name the engine worker ``pid`` (a process group leader) in the lock file this process holds."""
    assert _held is not None, "hold_engine_lock() first"
    holder = _read(_held)
    _write(_held, holder | {"workers": [*holder.get("workers", []), pid]})


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
    except json.JSONDecodeError:  # written as the holder started
        return {}


def _write(fd: int, holder: dict) -> None:
    data = json.dumps(holder).encode("utf-8")
    os.ftruncate(fd, 0)  # in place: replacing the file would drop the lock others wait on
    os.pwrite(fd, data, 0)


class Process(NamedTuple):
    """A process as ``/proc`` shows it."""

    state: str
    """``R`` running, ``S`` sleeping, ``Z`` ended but not yet reaped by its parent, ..."""
    ppid: int
    pgrp: int
    resident_bytes: int


def processes() -> dict[int, Process]:
    """Every process of this machine by pid, read from ``/proc`` (empty where there is none)."""
    proc, page = Path("/proc"), os.sysconf("SC_PAGE_SIZE")
    found = {}
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # after "(comm)": state ppid pgrp ...
            resident = int((entry / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):  # ended meanwhile
            continue
        found[int(entry.name)] = Process(fields[0], int(fields[1]), int(fields[2]), resident * page)
    return found


def _busy_message(holder: dict, path: Path) -> str:
    pid, command = holder.get("pid", "unknown"), holder.get("command", "unknown")
    workers = holder.get("workers", [])
    running = processes()
    if not workers:
        memory = "its engine is starting"
    elif not running:  # no /proc
        memory = f"its engine runs as process group {', '.join(map(str, workers))}"
    else:
        resident = sum(p.resident_bytes for p in running.values() if p.pgrp in workers)
        memory = f"its engine (process group {', '.join(map(str, workers))}) holds {resident / 2**30:.1f} GiB resident"
    return (
        f"Another vLLM engine is running on this machine: pid {pid} (`{command}`); {memory}. Two engines would "
        f"compete for the machine's memory and cores. Wait until that run ends, or stop it (`kill {pid}`, which "
        f"also ends its engine), then run again. (Lock: {path})"
    )
