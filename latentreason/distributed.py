"""Data-parallel training and evaluation on ``torch.distributed``.

Start one process per device with ``torchrun``; it describes the job in
environment variables (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) and :func:`setup` joins the process group
they describe: NCCL when the models run on CUDA (each process on
``cuda:LOCAL_RANK``), gloo on the CPU. Without those variables everything here
is a no-op for a single process, so the same code runs either way.

Every rank holds the frozen models; only the small trainable components are
kept in sync (their gradients are summed over ranks, see
:func:`reduce_gradients`). Small control messages (which examples are done, a
summary, an error message) travel as JSON in byte tensors, never as pickles.
See ``docs/distributed.md``.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from latentreason.errors import LatentReasonError
from latentreason.models.runtime import resolve_device

T = TypeVar("T")

#: How long a rank waits for the others in one collective. Ranks of an
#: evaluation may finish their shards minutes apart; a crashed rank is noticed
#: by torchrun, which stops the others, so a long limit costs nothing.
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a job.

    Attributes:
        rank: this process's index, 0 to ``size - 1``.
        size: the number of processes (1 without torchrun).
    """

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the rank that writes files and prints progress."""
        return self.rank == 0

    def share(self, batch: Sequence[T]) -> list[T]:
        """This rank's contiguous part of a global batch.

        Parts differ in size by at most one (lower ranks get the extra
        examples); a rank's part is empty when the batch has fewer examples
        than there are ranks.
        """
        base, extra = divmod(len(batch), self.size)
        start = self.rank * base + min(self.rank, extra)
        return list(batch[start : start + base + (self.rank < extra)])

    def shard(self, items: Sequence[T]) -> list[T]:
        """Every ``size``-th item starting at ``rank`` (items r, r+W, r+2W, ...)."""
        return list(items[self.rank :: self.size])


def current() -> World:
    """The world of the process group this process has joined (a single process if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size())


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise LatentReasonError(
            f"Environment variable {name}={value!r} must be an integer (torchrun sets it)."
        ) from None


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def setup(device: str = "auto") -> World:
    """Join the process group that torchrun's environment describes (once per process).

    Args:
        device: the run's ``models.device``. ``"auto"`` and ``"cuda"`` become
            ``cuda:LOCAL_RANK`` (made the current device) with the NCCL backend
            when CUDA is available; a CPU run uses gloo.

    Returns:
        This process's world; ``World()`` when ``WORLD_SIZE`` is unset or 1.

    Raises:
        LatentReasonError: a device naming one GPU for several processes, or
            a process group that cannot be formed.
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return World()
    if not dist.is_available():
        raise LatentReasonError("WORLD_SIZE is set, but this torch build has no torch.distributed support.")
    resolved = resolve_device(device)
    cuda = resolved.startswith("cuda") and torch.cuda.is_available()  # else model loading reports the missing GPU
    if cuda:
        if torch.device(resolved).index is not None:
            raise LatentReasonError(
                f"models.device {device!r} names a single GPU, but torchrun started {size} processes and each "
                "uses its own GPU (cuda:LOCAL_RANK); set models.device to auto or cuda."
            )
        local_rank = _env_int("LOCAL_RANK", 0)
        if local_rank >= torch.cuda.device_count():
            raise LatentReasonError(
                f"Process LOCAL_RANK={local_rank} has no GPU of its own: this node has {torch.cuda.device_count()}. "
                "Start at most one process per GPU (torchrun --nproc_per_node)."
            )
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    except (RuntimeError, ValueError) as exc:
        raise LatentReasonError(
            f"Could not join the process group of {size} processes ({exc}). Start the job with torchrun, "
            "which sets RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (see docs/distributed.md)."
        ) from exc
    atexit.register(_teardown)
    return current()


def _comm_device() -> torch.device:
    """Where collective tensors live: the current GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here."""
    if current().size > 1:
        dist.barrier()


def all_gather_json(value: Any) -> list[Any]:
    """Every rank's JSON-serialisable ``value``, in rank order (also a barrier)."""
    if current().size == 1:
        return [value]
    device = _comm_device()
    data = torch.frombuffer(bytearray(json.dumps(value).encode("utf-8")), dtype=torch.uint8).to(device)  # (L,)
    lengths = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(lengths, torch.tensor([data.numel()], device=device))
    width = max(int(n) for n in lengths)
    padded = torch.zeros(width, dtype=torch.uint8, device=device)  # (L_max,)
    padded[: data.numel()] = data
    gathered = [torch.empty(width, dtype=torch.uint8, device=device) for _ in lengths]
    dist.all_gather(gathered, padded)
    return [json.loads(bytes(t[: int(n)].cpu().tolist())) for t, n in zip(gathered, lengths)]


def on_main(func: Callable[[], T]) -> T:
    """Run ``func`` on rank 0 only and give its JSON-serialisable result to every rank.

    A :class:`LatentReasonError` raised by ``func`` is raised on every rank,
    so no rank is left waiting for the others.
    """
    world = current()
    if world.size == 1:
        return func()
    outcome: Any = None
    error: LatentReasonError | None = None
    if world.is_main:
        try:
            outcome = {"value": func()}
        except LatentReasonError as exc:
            outcome, error = {"error": str(exc)}, exc
    outcome = all_gather_json(outcome)[0]
    if error is not None:
        raise error
    if "error" in outcome:
        raise LatentReasonError(outcome["error"])
    return outcome["value"]


def agree(value: Any, what: str, hint: str) -> None:
    """Check that every rank has the same JSON-serialisable ``value``.

    Args:
        value: this rank's view of something all ranks must share.
        what: what it is, for the message.
        hint: how to fix a disagreement.

    Raises:
        LatentReasonError: on every rank, if two ranks differ.
    """
    values = all_gather_json(value)
    if any(v != values[0] for v in values):
        views = "; ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise LatentReasonError(f"The ranks disagree about {what} ({views}). {hint}")


def sum_over_ranks(value: float) -> float:
    """The sum of ``value`` over ranks (in float64)."""
    if current().size == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_comm_device())  # (1,)
    dist.all_reduce(total)
    return total.item()


def reduce_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient over ranks, in place, in one message.

    A rank without a gradient for a parameter (it had no examples in this
    step) contributes zeros; a parameter no rank has a gradient for keeps
    ``grad=None``, so the optimizer skips it as it would in one process.
    """
    if current().size == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    present = torch.tensor([p.grad is not None for p in params], dtype=grads[0].dtype, device=grads[0].device)  # (n,)
    flat = torch.cat([*(g.reshape(-1) for g in grads), present])  # (P + n,): every trainable value, then the flags
    dist.all_reduce(flat)
    values, present = flat[: -len(params)], flat[-len(params) :]
    for param, grad, used in zip(params, values.split([p.numel() for p in params]), present.tolist()):
        param.grad = grad.view_as(param) if used else None


def broadcast_parameters(params: Sequence[torch.nn.Parameter]) -> None:
    """Copy rank 0's values of ``params`` to every rank."""
    if current().size == 1:
        return
    for param in params:
        dist.broadcast(param.data, src=0)
