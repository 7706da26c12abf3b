"""Paired statistics, trivial baselines and the comparison table built from them."""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import asdict

import pytest

from latentreason.evaluation.results import summarize
from latentreason.evaluation.stats import baselines, mcnemar_exact, paired, sign_flip_exact, wilson_interval
from latentreason.evaluation.tables import Cell, Row, csv_table, markdown_table


def test_mcnemar_exact_matches_the_binomial_tail():
    # 7 examples only the first method got right, 2 only the second: 2 * P(X <= 2), X ~ Bin(9, 1/2)
    assert mcnemar_exact(7, 2) == pytest.approx(2 * (1 + 9 + 36) / 512)
    assert mcnemar_exact(2, 7) == mcnemar_exact(7, 2)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0  # capped
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)


def test_paired_difference_and_bootstrap_interval():
    same = paired([True, False, True, False], [True, False, True, False])
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    better = paired([True] * 30 + [False] * 70, [False] * 10 + [True] * 10 + [False] * 80)
    assert better.difference == pytest.approx(0.20)
    assert better.only_method == 20 and better.only_reference == 0
    assert 0.1 < better.low < 0.2 < better.high < 0.3
    assert better.p_value == pytest.approx(2 / 2**20)
    assert paired([True, False], [False, True]) == paired([True, False], [False, True])  # fixed seed: reproducible
    with pytest.raises(ValueError):
        paired([True], [True, False])


def test_trivial_baselines():
    b = baselines(["No", "no", "Yes", "No", "Yes"])
    assert (b.n, b.majority_answer, b.majority, b.uniform) == (5, "No", pytest.approx(0.6), None)
    assert baselines(["A", "B"], [5, 4]).uniform == pytest.approx((1 / 5 + 1 / 4) / 2)


def test_wilson_interval_contains_the_proportion():
    low, high = wilson_interval(5, 20)
    assert low < 0.25 < high and wilson_interval(0, 0) == (0.0, 0.0)


def _cell(method, correct, truncated=0, seed=0, machine=None):
    records = [
        {
            "id": f"q{i}",
            "gold": "No" if i % 3 else "Yes",
            "strict_correct": c,
            "flexible_correct": c,
            "new_tokens": 10,
            "latency_s": 1.0,
            "truncated": int(i < truncated),
        }
        | ({"machine": machine} if machine else {})
        for i, c in enumerate(correct)
    ]
    return Cell(summarize("strategyqa", method, records, seed), records)


def test_the_table_pairs_every_method_with_the_reference():
    reference = _cell("cot", [True] * 10 + [False] * 30)
    other = _cell("softcot", [True] * 4 + [False] * 6 + [True] * 6 + [False] * 24, truncated=4)
    text = markdown_table([reference, other], reference="cot")
    lines = text.splitlines()
    assert "Δ flexible vs cot [95% CI]" in lines[0]
    cot_row, softcot_row = lines[2], lines[3]
    assert "| - | - |" in cot_row  # the reference has no paired test against itself
    expected = paired(other.correct([f"q{i}" for i in range(40)]), reference.correct([f"q{i}" for i in range(40)]))
    assert f"{expected.difference:+.3f}" in softcot_row and f"{expected.p_value:.3g} (6/6)" in softcot_row
    assert "10.0%" in softcot_row  # truncated share
    assert any(line.startswith("trivial baselines on strategyqa (n=40): always 'No' 0.650") for line in lines)
    assert any("softcot's chains on strategyqa were cut" in line for line in lines)
    csv_lines = csv_table([reference, other], reference="cot").splitlines()
    assert csv_lines[0].startswith("task,producer,seed,n,") and ",cot," in csv_lines[2]
    assert math.isclose(float(csv_lines[2].split(",")[11]), expected.difference)


def test_sign_flip_test_is_mcnemar_for_single_runs_and_exact_for_shares():
    for only_first, only_second, ties in ((7, 2, 5), (10, 0, 0), (3, 3, 4), (0, 0, 6), (1, 12, 30)):
        diffs = [1.0] * only_first + [-1.0] * only_second + [0.0] * ties
        assert sign_flip_exact(diffs) == pytest.approx(mcnemar_exact(only_first, only_second))
    shares = [0.5, 1.0, -0.5, 0.5, 1.0, 0.0, 1 / 3 - 1 / 2]
    steps = [d for d in shares if d]
    observed = abs(sum(steps))
    flips = [sum(s * d for s, d in zip(signs, steps)) for signs in itertools.product((1, -1), repeat=len(steps))]
    brute = sum(abs(total) >= observed - 1e-12 for total in flips) / len(flips)
    assert sign_flip_exact(shares) == pytest.approx(brute)


def test_seeds_pool_per_problem_not_as_extra_pairs():
    rng = random.Random(0)
    cot = _cell("cot", [rng.random() < 0.3 for _ in range(60)])
    runs = [_cell("softcot", [rng.random() < 0.45 for _ in range(60)], seed=s) for s in (0, 1)]
    ids = [f"q{i}" for i in range(60)]
    test = Row("strategyqa", "softcot", runs).against(Row("strategyqa", "cot", [cot]))
    shares = [(a + b) / 2 for a, b in zip(runs[0].correct(ids), runs[1].correct(ids))]
    assert test.n == 60  # problems, not problems x seeds
    assert test.difference == pytest.approx(sum(shares) / 60 - sum(cot.correct(ids)) / 60)
    diffs = [s - c for s, c in zip(shares, cot.correct(ids))]
    assert test.p_value == pytest.approx(sign_flip_exact(diffs))
    assert (test.only_method, test.only_reference) == (sum(d > 0 for d in diffs), sum(d < 0 for d in diffs))
    # two seeds against two seeds: the pooled difference is the mean of the same-seed differences
    pause = [_cell("pause-trained", [rng.random() < 0.4 for _ in range(60)], seed=s) for s in (0, 1)]
    matched = Row("strategyqa", "softcot", runs).against(Row("strategyqa", "pause-trained", pause))
    per_seed = [Row("strategyqa", "softcot", [r]).against(Row("strategyqa", "p", [p])) for r, p in zip(runs, pause)]
    assert matched.difference == pytest.approx(sum(t.difference for t in per_seed) / 2)
    text = markdown_table([cot, *runs], reference="cot")
    assert "not problems x seeds" in text and f"{test.p_value:.3g} ({test.only_method}/{test.only_reference})" in text


def test_the_table_names_the_machines_its_speeds_come_from():
    old = _cell("cot", [True, False] * 5)  # records from before records named their machine
    amd = _cell("pause", [False, True] * 5, machine="AMD EPYC (no native bf16), 2 threads, torch 2.13.0+cpu")
    mixed = _cell("softcot", [True] * 10, machine="Intel Xeon (amx_bf16), 2 threads, torch 2.13.0+cpu")
    mixed.records[0]["machine"] = amd.records[0]["machine"]  # a cell resumed on another machine
    assert amd.summary.machines == {amd.records[0]["machine"]: 10}
    assert "machine: AMD EPYC (no native bf16), 2 threads" in amd.summary.table()
    assert markdown_table([amd], reference="pause").splitlines()[-1] == f"machine: {amd.records[0]['machine']}"
    last = markdown_table([old, amd, mixed], reference="cot").splitlines()[-1]
    assert last.startswith(
        "machines differ (compare examples/s and wall s only within one): cot seed 0 on not recorded;"
    )
    assert "pause seed 0 on AMD EPYC" in last
    assert (
        "softcot seed 0 on AMD EPYC (no native bf16), 2 threads, torch 2.13.0+cpu (1 of 10 examples); Intel Xeon"
        in last
    )
    assert csv_table([old, amd], reference="cot").splitlines()[1].endswith(",not recorded")


def test_a_committed_summary_that_names_the_method_producer_still_reads_back():
    from pathlib import Path

    from latentreason.evaluation.tables import read_cell

    folder = Path(__file__).parents[3] / "experiments" / "softcot-gsm8k-pilot" / "gsm8k-cot-softcot-style-seed0"
    assert "producer" in json.loads((folder / "summary.json").read_text())  # written before Summary.method
    cell = read_cell(folder)
    assert (cell.summary.method, cell.summary.n, cell.summary.flexible_acc) == ("cot-softcot-style", 48, 5 / 48)
    assert "method" in asdict(cell.summary) and "producer" not in asdict(cell.summary)
