"""Statistics for comparing methods on the same problems.

Methods of one comparison answer the same examples, so they are compared
example by example: the accuracy difference with a paired bootstrap
interval, and McNemar's exact test on the discordant pairs. A method run
with several seeds is scored per example by the share of its seeds that got
it right; the example stays the unit that is resampled and tested (its
seeds are not independent draws of new problems), and McNemar's test
becomes its exact generalisation, the sign-flip test on the per-example
differences (:func:`sign_flip_exact`). Trivial
baselines (always the most frequent gold answer; a uniform guess among the
options) say how much of an accuracy is signal.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch

BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 20261129


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (``(0, 0)`` when ``n == 0``)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts.

    Under the null hypothesis each discordant pair is equally likely to
    favour either method, so the smaller count is binomial(b + c, 1/2).

    Args:
        only_first: examples the first method got right and the second wrong (b).
        only_second: examples the second method got right and the first wrong (c).

    Returns:
        ``min(1, 2 * P(X <= min(b, c)))``; 1.0 when there is no discordant pair.
    """
    n = only_first + only_second
    if n == 0:
        return 1.0
    k = min(only_first, only_second)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def sign_flip_exact(differences: Sequence[float]) -> float:
    """Two-sided exact sign-flip (paired permutation) test that the differences are centred on 0.

    Under the null hypothesis each example's difference is as likely to have
    either sign, so the p-value is the share of the ``2^m`` sign assignments
    of the ``m`` non-zero differences whose sum is at least as far from 0 as
    the observed one. It is computed exactly by convolution on the integer
    grid the differences lie on (differences of seed shares are fractions
    with small denominators). With differences in {-1, 0, 1} (one seed
    each) it equals :func:`mcnemar_exact`.

    Args:
        differences: per-example differences (method minus reference), each a
            fraction with a denominator of at most 1000.

    Returns:
        ``P(|S| >= |observed sum|)``; 1.0 when every difference is 0.
    """
    steps = [Fraction(d).limit_denominator(1000) for d in differences if d != 0]
    if not steps:
        return 1.0
    scale = math.lcm(*(f.denominator for f in steps))
    grid = [int(f * scale) for f in steps]  # the differences as integers on a common grid
    sizes = [abs(g) for g in grid]
    observed = abs(sum(grid))
    total = sum(sizes)
    dist = torch.zeros(2 * total + 1, dtype=torch.float64)  # P(S = k - total)
    dist[total] = 1.0
    for size in sizes:  # S <- S +/- size, each with probability 1/2
        dist = 0.5 * (torch.roll(dist, size) + torch.roll(dist, -size))  # no wrap: |S| never exceeds total
    sums = torch.arange(-total, total + 1).abs()  # (2 * total + 1,)
    return min(1.0, float(dist[sums >= observed].sum()))


@dataclass(frozen=True)
class Paired:
    """A method against a reference on the same examples.

    Attributes:
        n: examples (pairs).
        difference: method accuracy minus reference accuracy.
        low, high: 95% paired bootstrap interval of the difference.
        only_method: examples only the method got right (with seeds: the
            method's share of seeds right is higher than the reference's).
        only_reference: examples only the reference got right (or with the
            higher share).
        p_value: McNemar's exact two-sided p-value (with seeds: the exact
            sign-flip test, its generalisation).
    """

    n: int
    difference: float
    low: float
    high: float
    only_method: int
    only_reference: int
    p_value: float


def paired(method: Sequence[float], reference: Sequence[float], samples: int = BOOTSTRAP_SAMPLES) -> Paired:
    """Compare per-example scores of a method with a reference's on the same examples.

    A score is 1/0 (right or wrong: bools are fine) or, for a method run with
    several seeds, the share of its seeds that got the example right. The
    interval is the 2.5th to 97.5th percentile of the mean difference over
    ``samples`` resamples of the examples (with replacement, a fixed seed, so
    the same data give the same interval); the p-value is McNemar's exact
    test, or with shares the exact sign-flip test (:func:`sign_flip_exact`).

    Args:
        method: score per example.
        reference: the reference's score on the same examples, in the same order.
        samples: bootstrap resamples.

    Raises:
        ValueError: the two sequences differ in length or are empty.
    """
    if len(method) != len(reference) or not method:
        raise ValueError(
            f"paired comparison needs two equally long, non-empty sequences ({len(method)} vs {len(reference)})"
        )
    diff = torch.tensor([float(m) - float(r) for m, r in zip(method, reference)], dtype=torch.float64)  # (n,)
    generator = torch.Generator().manual_seed(BOOTSTRAP_SEED)
    index = torch.randint(len(diff), (samples, len(diff)), generator=generator)  # (samples, n)
    means = diff[index].mean(dim=1)  # (samples,)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    only_method, only_reference = int((diff > 0).sum()), int((diff < 0).sum())
    binary = all(float(x) in (0.0, 1.0) for x in (*method, *reference))
    p_value = mcnemar_exact(only_method, only_reference) if binary else sign_flip_exact(diff.tolist())
    return Paired(len(diff), float(diff.mean()), low, high, only_method, only_reference, p_value)


@dataclass(frozen=True)
class Baselines:
    """Trivial baselines of an evaluated slice of examples.

    Attributes:
        n: examples.
        majority_answer: the most frequent gold answer.
        majority: accuracy of always giving it.
        uniform: expected accuracy of a uniform guess among the options (choice tasks), else None.
    """

    n: int
    majority_answer: str
    majority: float
    uniform: float | None


def baselines(golds: Sequence[str], options: Sequence[int] | None = None) -> Baselines:
    """The trivial baselines of examples with these gold answers.

    Args:
        golds: gold answers (compared as text, case-insensitively).
        options: number of options per example, for choice tasks.
    """
    counts = Counter(g.strip().casefold() for g in golds)
    answer, hits = counts.most_common(1)[0] if counts else ("", 0)
    shown = next((g.strip() for g in golds if g.strip().casefold() == answer), answer)
    uniform = sum(1 / k for k in options) / len(options) if options else None
    return Baselines(len(golds), shown, hits / len(golds) if golds else 0.0, uniform)
