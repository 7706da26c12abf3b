"""Speed measurements of the data path: what ``latentreason bench`` runs.

One call of :func:`run_bench` on the default models (or tiny random ones, see
:func:`quick_models`) measures:

* SoftCoT vs zero-shot CoT end-to-end time per example: same LLM, same
  examples, and both forced to write exactly ``max_new_tokens`` tokens, so the
  ratio is the cost of the assistant pass and the longer prompt alone (also
  computed from those stages alone, which is steadier on a busy machine);
* examples/s at batch ``batch_size`` vs batch 1 for the SoftCoT pipeline, in
  each dtype (float32 and bfloat16), and whether bfloat16 changes the greedy
  tokens;
* decode tokens/s at batch 1 against the memory-bandwidth bound: this
  machine's bandwidth (measured here) over the bytes one decoding step reads
  (every weight except the input-embedding matrix, of which one row is read,
  plus the KV cache);
* projector training throughput of the real :class:`~latentreason.training.trainer.Trainer`;
* where the time of one batch-1 SoftCoT example goes, stage by stage, and the
  Python-side cost of decoding (:func:`~latentreason.decoding.generate.generate` vs a
  raw forward loop, the answer-complete check per step).

The ``end-to-end`` section (:mod:`latentreason.bench.end_to_end`) times whole
evaluations; the ``decoders`` section (:mod:`latentreason.bench.decoders`) the
decoding loop with and without a decoding controller; the ``latent-prefix``
section (:mod:`latentreason.bench.latent_prefix`) the text after a latent
prefix on each engine.

Forced length: the measured configs set ``generation.min_new_tokens`` to
``max_new_tokens`` (with ``stop_at_answer`` off), so the decoding loop cannot
stop early at an end-of-turn token and every chain has the same length.

On a machine shared with other jobs, ``repeats`` keeps the fastest of several
runs, ``threads`` sets torch's intra-op threads (one thread per process avoids
the large slowdown of two threads competing with another process for two
cores), and the report says how many cores other processes kept busy.

:class:`Stages`, :func:`prefill` and :func:`decode_step` are also what the
pytest-benchmark suites in ``tests/benchmarks`` time.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from latentreason.bench.decoders import decoder_overhead, decoder_targets, format_decoders
from latentreason.bench.end_to_end import end_to_end, format_end_to_end
from latentreason.bench.hardware import CpuShare, memory_bandwidth
from latentreason.bench.latent_prefix import format_latent_prefix, latent_prefix_engines, latent_prefix_targets
from latentreason.bench.measure import measure_dtype, token_agreement
from latentreason.bench.settings import (
    BATCH_TARGET,
    BOUND_TARGET,
    DEFAULT_MAX_NEW_TOKENS,
    E2E_TARGET,
    RATIO_TARGET,
    BenchSettings,
)
from latentreason.config import ModelsConfig
from latentreason.models.runtime import NATIVE_BF16_FLAGS, Runtime, cpu_flags, cpu_name


def run_bench(settings: BenchSettings, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Run every measurement; see the module docstring.

    Args:
        settings: models, task, lengths, dtypes.
        log: receives progress messages.

    Returns:
        A JSON-serializable report (render it with :func:`format_report`).

    Raises:
        ValueError: ``max_new_tokens`` below 2 (no decoding step to time).
    """
    if settings.max_new_tokens < 2:
        raise ValueError("max_new_tokens must be at least 2: there would be no decoding step to time")
    report: dict[str, Any] = {"settings": asdict(settings)}
    device = Runtime(ModelsConfig(device=settings.device)).device
    default_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads or default_threads)
    try:
        with CpuShare() as share:
            log("measuring memory bandwidth ...")
            bandwidth = memory_bandwidth(settings.bandwidth_mib, device=device)
            gc.collect()
            if "micro" in settings.sections:
                for i, dtype in enumerate(settings.dtypes):
                    report[dtype] = measure_dtype(settings, dtype, bandwidth["read_gb_s"], full=i == 0, log=log)
                    gc.collect()  # the models of this dtype are gone before the next ones load
            if "end-to-end" in settings.sections:
                report["end_to_end"] = end_to_end(settings, log)
                gc.collect()
            if "decoders" in settings.sections:
                report["decoders"] = decoder_overhead(settings, log)
                gc.collect()
            if "latent-prefix" in settings.sections:
                report["latent_prefix"] = latent_prefix_engines(settings, log)
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(default_threads)
    if "micro" in settings.sections and len(settings.dtypes) > 1:
        base, other = settings.dtypes[:2]
        report["dtype_agreement"] = {"dtypes": [base, other], **token_agreement(report[base], report[other])}
    report["machine"] = {
        "cpu": cpu_name(),
        "bf16_flags": sorted(set(NATIVE_BF16_FLAGS) & cpu_flags()),
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "device": device,
        "bandwidth": bandwidth,
        "load_at_start": share.load_at_start,
        "other_processes_cores": share.others,
    }
    report["targets"] = targets(report)
    return report


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets with the measured values and whether they are met."""
    settings = report["settings"]
    out = []
    for name, rows in report.get("end_to_end", {}).get("variants", {}).items():
        for producer, row in rows.items():
            if "speedup" in row:
                out.append(
                    {
                        "name": f"end-to-end examples/s, {name} / 0.1 defaults, {producer}",
                        "value": row["speedup"],
                        "target": f">= {E2E_TARGET:g}",
                        "met": row["speedup"] >= E2E_TARGET,
                    }
                )
    if "decoders" in report:
        out += decoder_targets(report["decoders"])
    if "latent_prefix" in report:
        out += latent_prefix_targets(report["latent_prefix"])
    if "micro" not in settings["sections"]:
        return out
    if "int8" in settings["dtypes"]:
        fraction = report["int8"]["profile"]["fraction_of_bound"]
        out.append(
            {
                "name": "decode tokens/s at batch 1 / bandwidth bound, int8",
                "value": fraction,
                "target": f">= {BOUND_TARGET:.0%}",
                "met": fraction >= BOUND_TARGET,
            }
        )
    first = report[settings["dtypes"][0]]
    if "softcot_vs_cot" in first:
        ratio = first["softcot_vs_cot"]["median_ratio"]
        out.append(
            {
                "name": "softcot/cot time per example (median over examples)",
                "value": ratio,
                "target": f"<= {RATIO_TARGET}",
                "met": ratio <= RATIO_TARGET,
            }
        )
    for dtype in settings["dtypes"]:
        ratio = report[dtype]["throughput"]["ratio"]
        out.append(
            {
                "name": f"examples/s batch {settings['batch_size']} / batch 1, {dtype}",
                "value": ratio,
                "target": f">= {BATCH_TARGET}",
                "met": ratio >= BATCH_TARGET,
            }
        )
    return out


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.2f} MB"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def _target_table(targets: list[dict[str, Any]]) -> list[str]:
    """Targets (as :func:`targets` gives them) as a Markdown table, after a blank line."""
    return ["", "| target | value | goal | met |", "|---|---|---|---|"] + [
        f"| {t['name']} | {t['value']:.2f} | {t['target']} | {_yes(t['met'])} |" for t in targets
    ]


def format_report(report: dict[str, Any]) -> str:
    """The report as short Markdown tables and notes."""
    lines = _micro_lines(report) if "micro" in report["settings"]["sections"] else []
    if "end_to_end" in report:
        lines += format_end_to_end(report["end_to_end"])
        lines += _target_table([t for t in report["targets"] if "end-to-end" in t["name"]])
    if "decoders" in report:
        lines += format_decoders(report["decoders"])
        lines += _target_table([t for t in report["targets"] if t["name"].startswith("decoder ")])
    if "latent_prefix" in report:
        lines += format_latent_prefix(report["latent_prefix"])
        measured = [t for t in report["targets"] if t["name"].startswith("latent prefix ")]
        lines += _target_table(measured) if measured else []  # no ratio without vLLM
    machine = report["machine"]
    bandwidth = machine["bandwidth"]["read_gb_s"]
    others = machine["other_processes_cores"]
    flags = ", ".join(machine.get("bf16_flags", [])) or "no native bf16 (no amx_bf16 or avx512_bf16)"
    lines.append(
        f"machine: {machine['cpu']} ({flags}), {machine['cores']} cores, torch {machine['torch']} with "
        f"{machine['torch_threads']} threads; memory read {bandwidth:.1f} GB/s, copy {machine['bandwidth']['copy_gb_s']:.1f} GB/s"
    )
    if others is not None and others > 0.25:
        lines.append(
            f"warning: other processes kept {others:.1f} of {machine['cores']} cores busy during the benchmark "
            f"(load {machine['load_at_start']:.1f} at start): the times are slower and noisier than on an idle machine."
        )
    return "\n".join(lines)


def _micro_lines(report: dict[str, Any]) -> list[str]:
    """The micro-benchmark tables (fixed-length chains, per dtype)."""
    settings = report["settings"]
    dtypes = settings["dtypes"]
    first = report[dtypes[0]]
    n, tokens, size = first["examples"], settings["max_new_tokens"], settings["batch_size"]
    lines = [
        (
            f"{settings['task']}, {n} examples, exactly {tokens} new tokens per chain, greedy; "
            f"LLM {settings['llm']}, assistant {settings['assistant']}"
        ),
        "",
        "| measurement | result | target | met |",
        "|---|---|---|---|",
    ]
    if "softcot_vs_cot" in first:
        r = first["softcot_vs_cot"]
        lines.append(
            f"| SoftCoT / CoT time per example ({dtypes[0]}, batch 1) | {r['median_ratio']:.3f} median over examples "
            f"({r['softcot_s_per_example']:.2f} s / {r['cot_s_per_example']:.2f} s mean = {r['ratio']:.3f}; "
            f"{r['ratio_from_stages']:.3f} from the stages; "
            f"{r['projected_ratio_at_default_length']:.3f} projected at {DEFAULT_MAX_NEW_TOKENS} tokens) "
            f"| <= {RATIO_TARGET} | {_yes(r['median_ratio'] <= RATIO_TARGET)} |"
        )
    for dtype in dtypes:
        t = report[dtype]["throughput"]
        lines.append(
            f"| SoftCoT examples/s, batch {size} / batch 1 ({dtype}) | {t['ratio']:.2f}x "
            f"({t['batched_examples_s']:.3f} / {t['batch1_examples_s']:.3f}; "
            f"{t['projected_ratio_at_default_length']:.2f}x projected at {DEFAULT_MAX_NEW_TOKENS} tokens) "
            f"| >= {BATCH_TARGET:g}x | {_yes(t['ratio'] >= BATCH_TARGET)} |"
        )
    if "dtype_agreement" in report:
        a = report["dtype_agreement"]
        where = (
            "all tokens equal"
            if a["first_example_first_difference"] is None
            else f"first difference at token {a['first_example_first_difference']}"
        )
        lines.append(
            f"| {a['dtypes'][1]} vs {a['dtypes'][0]} greedy output | example 1: {where} of {a['first_example_tokens']}; "
            f"{a['identical']}/{a['n']} generations identical, {a['same_answers']}/{a['n']} same extracted answer | - | - |"
        )
    bandwidth = report["machine"]["bandwidth"]["read_gb_s"]
    for dtype in dtypes:
        p = report[dtype]["profile"]
        lines.append(
            f"| decode tokens/s, batch 1 ({dtype}) | {p['decode_tokens_s']:.1f} = {p['fraction_of_bound']:.0%} of the bound "
            f"{p['bound_tokens_s']:.1f} ({bandwidth:.1f} GB/s / {_size(p['bytes_per_token']['bytes'])} per token) | - | - |"
        )
    if "training" in first:
        t = first["training"]
        lines.append(
            f"| projector training, batch {t['batch_size']} ({dtypes[0]}) | {t['examples_per_s']:.2f} examples/s "
            f"({t['steps']} steps) | - | - |"
        )
    p = first["profile"]
    stages = p["stages_s"]
    total = sum(stages.values())
    names = {
        "produce": "assistant forward (producer)",
        "project": "projection",
        "inject": "injection (prompt + splice)",
        "prefill": f"LLM prefill ({p['prompt_tokens']} tokens)",
        "decode_forward": f"LLM decode forward, {tokens - 1} steps",
        "generate_outside_forward": "decoding loop outside the model body (LM head, sampling, bookkeeping)",
        "score": "answer extraction",
    }
    lines += [
        "",
        f"Where one batch-1 SoftCoT example goes ({dtypes[0]}):",
        "",
        "| stage | ms | share |",
        "|---|---|---|",
        *(f"| {names[k]} | {v * 1e3:.1f} | {v / total:.1%} |" for k, v in stages.items()),
        "",
    ]
    step = p["step_s"]
    notes = (
        f"decode step ({dtypes[0]}, batch 1): decoding loop {step['generate'] * 1e3:.1f} ms = model body "
        f"{step['forward'] * 1e3:.1f} ms + {step['outside_forward'] * 1e3:.2f} ms outside it; raw forward loop "
        f"{step['forward_loop'] * 1e3:.1f} ms; lm_head alone {step['lm_head'] * 1e3:.1f} ms "
        f"({step['lm_head'] / step['forward']:.0%} of the forward)"
    )
    if p["answer_check_s"]:
        notes += "; answer-complete check (stop_at_answer, off here): " + ", ".join(
            f"{s * 1e3:.2f} ms per step at batch {b}" for b, s in p["answer_check_s"].items()
        )
    lines.append(notes)
    return lines
