"""The comparison report's thought sections: ablations paired with their method's own thoughts, and audits found beside cells."""

from __future__ import annotations

from latentreason.evaluation.attention import AttentionMass
from latentreason.evaluation.audit import Audit
from latentreason.evaluation.probe import ProbeScore
from latentreason.evaluation.results import summarize
from latentreason.evaluation.spread import Spread
from latentreason.evaluation.tables import Cell, markdown_table, own_thoughts_cell


def _cell(label, thoughts_from, checkpoint, texts, answers, gold, folder=None, seed=0):
    records = [
        {
            "id": f"q{i}",
            "generation": text,
            "flexible": answer,
            "gold": g,
            "strict_correct": answer == g,
            "flexible_correct": answer == g,
            "new_tokens": 5,
            "latency_s": 1.0,
        }
        for i, (text, answer, g) in enumerate(zip(texts, answers, gold))
    ]
    config = {
        "label": label,
        "producer": {"name": "softcot", "options": {}},
        "data": {"task": "gsm8k", "limit": len(texts)},
        "checkpoint": checkpoint,
        "thoughts_from": thoughts_from,
        "seed": seed,
    }
    return Cell(summarize("gsm8k", label, records, seed), records, folder, config)


def _audit(share: float) -> Audit:
    stage = Spread("llm input", share, 0.99, 2.7, 1.0, 0.9)
    return Audit(
        method="softcot",
        task="gsm8k",
        split="train",
        offset=1100,
        examples=64,
        thoughts_from="own",
        weights=[],
        embed_norm=1.1,
        stages=[stage],
        probes={"llm input": {"dollar": ProbeScore(0.97, 0.7), "length": ProbeScore(0.8, 0.35)}},
        attention=AttentionMass(0.012, 0.03, 2048),
    )


def test_ablations_pair_with_their_own_method_and_report_what_changed(tmp_path):
    gold = ["1", "2", "3", "4"]
    own = _cell("softcot", "own", "runs/s0/last.safetensors", ["a", "b", "c", "d"], ["1", "2", "3", "9"], gold)
    other = _cell("softcot-other", "own", "runs/t0/last.safetensors", ["a", "b", "c", "d"], gold, gold)
    zero = _cell("softcot-zero", "zero", "runs/s0/last.safetensors", ["a", "x", "c", "y"], ["1", "2", "7", "9"], gold)
    orphan = _cell("orphan-mean", "mean", "runs/u0/last.safetensors", ["a"] * 4, gold, gold)
    assert own_thoughts_cell(zero, [other, zero, own, orphan]) is own  # same weights; the other run's differ
    assert own_thoughts_cell(orphan, [other, zero, own, orphan]) is None
    table = markdown_table([own, other, zero, orphan])
    section = table.split("thoughts ablations against the same method with its own thoughts")[1].splitlines()
    rows = [line for line in section if line.startswith("| gsm8k")]
    # text changed on q1 and q3 (2 of 4), the answer on q2 (1 of 4); one problem lost, none gained
    assert rows == [
        "| gsm8k | softcot-zero | zero | softcot | 1 | 4 | 50.0% | 25.0% | -0.250 [-0.750, +0.000] | 1 (0/1) |"
    ]
    assert "thoughts ablations" not in markdown_table([own, other])


def test_audits_are_found_beside_a_cell_or_its_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gold = ["1", "2"]
    own = _cell("softcot", "own", "runs/s0/last.safetensors", ["a", "b"], gold, gold)
    zero = _cell("softcot-zero", "zero", "runs/s0/last.safetensors", ["a", "b"], gold, gold, folder=tmp_path / "zero")
    assert "thought audits" not in markdown_table([own, zero])
    _audit(4.3e-5).write(tmp_path / "runs" / "s0" / "audit.json")  # what `train` wrote beside the weights
    lines = [line for line in markdown_table([own, zero]).splitlines() if line.startswith("| gsm8k | softcot")]
    audited = [line for line in lines if "runs/s0/audit.json" in line]
    assert audited == [
        "| gsm8k | softcot | 0 | gsm8k/train rows 1100-1163 | llm input | 4.3e-05 | 0.99000 | 2.7 "
        "| $ 0.97 (0.70), length 0.80 (0.35) | 0.012 / 0.030 | runs/s0/audit.json |"
    ]  # the ablation does not inherit the training's audit of the method's own thoughts
    _audit(0.0).write(tmp_path / "zero" / "audit.json")
    assert any(
        "| softcot-zero | 0 | gsm8k/train rows 1100-1163 | llm input | 0 |" in line
        for line in markdown_table([own, zero]).splitlines()
    )
