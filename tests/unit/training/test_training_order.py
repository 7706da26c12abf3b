"""The epoch order: grouping by length pads less, covers every example once, and follows the seed."""

from __future__ import annotations

import random

import torch

from latentreason.training.order import epoch_order


def _lengths(n: int = 203, seed: int = 0) -> list[int]:
    """Lengths like a training set's: mostly short, a few long outliers."""
    rng = random.Random(seed)
    return [rng.randint(60, 200) if rng.random() < 0.9 else rng.randint(300, 400) for _ in range(n)]


def _padding(order: list[int], lengths: list[int], size: int) -> int:
    """Padded positions over the epoch: each batch is padded to its longest row."""
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def _order(lengths: list[int], size: int, seed: int, grouped: bool) -> list[int]:
    return epoch_order(lengths, size, torch.Generator().manual_seed(seed), grouped)


def test_grouping_pads_less_and_covers_every_example_once():
    lengths = _lengths()
    for size in (1, 4, 8):
        grouped, shuffled = _order(lengths, size, 3, True), _order(lengths, size, 3, False)
        assert sorted(grouped) == list(range(len(lengths)))
        if size > 1:
            assert _padding(grouped, lengths, size) < _padding(shuffled, lengths, size) / 4


def test_the_order_follows_the_seed_and_the_short_batch_comes_last():
    lengths = _lengths()
    first = _order(lengths, 4, 1, True)
    assert first == _order(lengths, 4, 1, True)
    assert first != _order(lengths, 4, 2, True)
    batches = [first[i : i + 4] for i in range(0, len(first), 4)]
    assert [len(b) for b in batches] == [4] * 50 + [3]
    longest = [max(lengths[i] for i in b) for b in batches[:-1]]
    assert longest != sorted(longest, reverse=True)  # the batches themselves are shuffled


def test_without_grouping_the_order_is_the_plain_shuffle_of_earlier_versions():
    lengths = _lengths(40)
    generator = torch.Generator().manual_seed(7)
    assert _order(lengths, 4, 7, False) == torch.randperm(40, generator=generator).tolist()
