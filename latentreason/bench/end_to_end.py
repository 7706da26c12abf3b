"""Whole evaluations: the defaults of latentreason 0.1 against the fast settings, in one run.

CoT and SoftCoT answer the same GSM8K test problems (greedy, answers stop
generation as in any run) under each setting:

* ``0.1 defaults``: float32, static batches of 8 (``generate()``, every row
  waits for the batch's longest chain);
* ``fast``: ``models.dtype: auto``, continuous batching at batch 16, and on
  the CPU int8 decoding steps;
* ``vllm`` (when its environment is set up, see ``latentreason vllm-setup``):
  the vLLM engine in float32, up to 64 sequences at once.

Both read prompts longest first (0.1 read them in file order, which pads a
little more). Model loading (and vLLM's start-up) is timed apart from answering. Each
setting's accuracy is compared with the 0.1 defaults' on the same problems
(paired difference, McNemar), so a faster setting that measured something
else would show.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import partial
from typing import Any

from latentreason.assembly.pipeline import Pipeline, Prediction
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.bench.hardware import timed
from latentreason.bench.settings import BenchSettings
from latentreason.config import RunConfig, load_config
from latentreason.errors import LatentReasonError
from latentreason.evaluation.stats import paired
from latentreason.models.runtime import Runtime, resolve_device
from latentreason.models.vllm_env import vllm_python

BASELINE = "0.1 defaults"


def variants(settings: BenchSettings) -> dict[str, dict[str, Any]]:
    """The settings compared: name -> config overrides (``vllm`` only if asked for and its environment exists)."""
    on_cpu = resolve_device(settings.device) == "cpu"
    out: dict[str, dict[str, Any]] = {
        BASELINE: {"models": {"dtype": "float32"}, "generation": {"batch_size": 8, "continuous_batching": False}},
        "fast": {
            "models": {"dtype": "auto", "quantize": "int8" if on_cpu else "none"},
            "generation": {"batch_size": 16},
        },
    }
    if settings.vllm and vllm_available():
        # vLLM schedules its own batch: up to 64 sequences at once read each weight once for all of them
        out["vllm"] = {"models": {"dtype": "float32"}, "generation": {"engine": "vllm", "batch_size": 64}}
    return out


def vllm_available() -> bool:
    """Whether vLLM's environment is set up (``latentreason vllm-setup``), so that its engine can be measured."""
    try:
        vllm_python()
    except LatentReasonError:
        return False
    return True


def answer_timed(
    config: RunConfig, registry: Registry, runtime: Runtime | None
) -> tuple[Pipeline, list[Prediction], dict[str, Any]]:
    """Prepare ``config``'s run and answer its problems, start-up timed apart from answering.

    Returns:
        The pipeline, its predictions, and their timing row: start-up seconds
        (loading, and vLLM's warm-up on the first problem), answer seconds,
        examples/s, tokens/s and truncated chains.
    """
    prepared, load_s = timed(partial(prepare, config, registry, runtime, log=None))  # loads the models
    pipeline, examples = prepared.pipeline, prepared.examples
    if config.generation.engine == "vllm":  # start the worker apart from answering
        _, start_s = timed(partial(pipeline.answer, examples[:1]))
        load_s += start_s
    predictions, seconds = timed(partial(pipeline.answer, examples))
    return (
        pipeline,
        predictions,
        {
            "load_s": load_s,
            "answer_s": seconds,
            "examples_per_s": len(predictions) / seconds,
            "tokens_per_s": sum(p.new_tokens for p in predictions) / seconds,
            "truncated": sum(p.truncated for p in predictions),
        },
    )


def end_to_end(settings: BenchSettings, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Answer ``settings.e2e_limit`` problems with CoT and SoftCoT under every variant.

    Returns:
        Per variant and producer: load seconds, answer seconds, examples/s,
        tokens/s, flexible accuracy, truncated chains, and the paired
        difference against the 0.1 defaults; plus the speed ratios.
    """
    registry = Registry()
    report: dict[str, Any] = {
        "problems": settings.e2e_limit,
        "max_new_tokens": settings.e2e_max_new_tokens,
        "variants": {},
    }
    correct: dict[tuple[str, str], list[bool]] = {}
    for name, overrides in variants(settings).items():
        rows: dict[str, Any] = {}
        runtime = None
        for producer in ("cot", "softcot"):
            config = load_config(
                overrides={
                    "models": {
                        "llm": settings.llm,
                        "assistant": settings.assistant,
                        "device": settings.device,
                        **overrides["models"],
                    },
                    "data": {"task": settings.task, "limit": settings.e2e_limit},
                    "producer": {"name": producer},
                    "generation": {"max_new_tokens": settings.e2e_max_new_tokens, **overrides["generation"]},
                }
            )
            log(f"[end to end] {name}: {producer} on {settings.e2e_limit} problems ...")
            pipeline, predictions, row = answer_timed(config, registry, runtime)
            runtime = pipeline.runtime
            correct[(name, producer)] = [p.score.flexible_correct for p in predictions]
            rows[producer] = {
                **row,
                "flexible_acc": sum(correct[(name, producer)]) / len(predictions),
                "dtype": pipeline.config.models.dtype,
            }
            if name != BASELINE:
                test = paired(correct[(name, producer)], correct[(BASELINE, producer)])
                rows[producer]["vs_defaults"] = {
                    "difference": test.difference,
                    "low": test.low,
                    "high": test.high,
                    "p_value": test.p_value,
                }
                rows[producer]["speedup"] = (
                    rows[producer]["examples_per_s"] / report["variants"][BASELINE][producer]["examples_per_s"]
                )
        report["variants"][name] = rows
        del runtime, pipeline
        gc.collect()  # free this variant's models before the next load
    return report


def format_end_to_end(report: dict[str, Any]) -> list[str]:
    """The section as Markdown lines."""
    lines = [
        "",
        f"end to end: {report['problems']} problems, up to {report['max_new_tokens']} new tokens, greedy; "
        "start-up (load, vLLM's warm-up) apart",
        "",
        "| setting | method | dtype | start-up s | examples/s | tokens/s | speed-up | flexible acc | truncated | Δ acc vs 0.1 [95% CI], p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in report["variants"].items():
        for producer, r in rows.items():
            test = r.get("vs_defaults")
            delta = (
                f"{test['difference']:+.3f} [{test['low']:+.3f}, {test['high']:+.3f}], p={test['p_value']:.2g}"
                if test
                else "-"
            )
            lines.append(
                f"| {name} | {producer} | {r['dtype']} | {r['load_s']:.0f} | {r['examples_per_s']:.3f} | {r['tokens_per_s']:.1f} "
                f"| {r.get('speedup', 1.0):.2f}x | {r['flexible_acc']:.3f} | {r['truncated']} | {delta} |"
            )
    return lines
