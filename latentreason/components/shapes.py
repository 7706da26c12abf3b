"""Shape checks at the boundaries between components, with both shapes in the message."""

from __future__ import annotations

import torch

from latentreason.errors import LatentReasonError


def check_shape(tensor: object, expected: dict[str, int | None], what: str) -> None:
    """Raise unless ``tensor`` is a tensor of the ``expected`` shape.

    Args:
        tensor: what a component returned or passed on.
        expected: each dimension's name and size (None: any size).
        what: what the tensor is, e.g. ``"the vectors producer 'x' returned"``.

    Raises:
        LatentReasonError: naming the expected shape, by name and by size, and the actual one.
    """
    names = ", ".join(expected)
    sizes = ", ".join(name if size is None else str(size) for name, size in expected.items())
    wanted = f"({names}) = ({sizes})"
    if not isinstance(tensor, torch.Tensor):
        raise LatentReasonError(f"{what} is a {type(tensor).__name__}, not a tensor of shape {wanted}.")
    actual = tuple(tensor.shape)
    fits = len(actual) == len(expected) and all(
        size is None or size == got for size, got in zip(expected.values(), actual, strict=True)
    )
    if not fits:
        raise LatentReasonError(f"{what} has shape {actual}, expected {wanted}.")
