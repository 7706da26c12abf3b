"""TensorBoard logging of a training (``train.tensorboard``), an optional extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from latentreason.errors import LatentReasonError

INSTALL = "pip install 'latentreason[tensorboard]'"


def require_tensorboard() -> None:
    """Raise the one clear error of a missing extra (checked before any model loads).

    Raises:
        LatentReasonError: the ``tensorboard`` package is not installed.
    """
    if importlib.util.find_spec("tensorboard") is None:
        raise LatentReasonError(
            f"train.tensorboard needs the tensorboard package, which is not installed: {INSTALL} "
            "(or leave train.tensorboard off; history.json holds the same numbers)."
        )


def summary_writer(folder: Path, first_step: int) -> Any:
    """A ``SummaryWriter`` on ``folder`` that drops events a resumed run redoes.

    Args:
        folder: where the event files go.
        first_step: the first optimizer step this run takes; events of an
            earlier sitting at this step or later (written after its last
            saved state) are dropped, so every step is logged once.
    """
    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder), purge_step=first_step)
