"""The order of training examples in an epoch: shuffled, or grouped by length.

A batch is padded to its longest row, so a batch that mixes a short
example with a long one computes mostly padding. Grouping by length (as
``transformers``' ``LengthGroupedSampler`` does) sorts each window of
:data:`WINDOW_BATCHES` batches of a random permutation by length, cuts it
into batches, and shuffles the order of the full batches: every batch holds
examples of similar length, every example comes once per epoch, and the
order depends only on the seed and the epoch.
"""

from __future__ import annotations

import torch

WINDOW_BATCHES = 50
"""Batches per sorted window: wide enough that each batch finds examples of its length, narrow enough to stay random."""


def epoch_order(lengths: list[int], batch_size: int, generator: torch.Generator, grouped: bool) -> list[int]:
    """Example indices for one epoch; consecutive runs of ``batch_size`` are its batches.

    Args:
        lengths: the tokens each example puts into a batch row (prompt and target).
        batch_size: examples per batch.
        generator: seeded for this epoch; the order is a function of its state.
        grouped: group by length; False gives a plain random permutation.

    Returns:
        A permutation of ``range(len(lengths))``. With grouping, a batch shorter
        than ``batch_size`` (the remainder) is the last one, as without.
    """
    order = torch.randperm(len(lengths), generator=generator).tolist()
    if not grouped:
        return order
    window = batch_size * WINDOW_BATCHES
    ranked = []
    for start in range(0, len(order), window):
        ranked += sorted(order[start : start + window], key=lambda i: -lengths[i])  # stable: ties keep random order
    batches = [ranked[start : start + batch_size] for start in range(0, len(ranked), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    rest = [b for b in batches if len(b) < batch_size]  # at most one
    shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    return [i for batch in shuffled + rest for i in batch]
