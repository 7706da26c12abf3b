"""A latent prefix decoded by each engine: the same method, problems and greedy text, in one run.

CODI (K latent thoughts: the LLM's own last hidden states through its step
map, with the study's LoRA adapter) answers the same GSM8K test problems
(greedy, answers stop generation as in any run) on

* ``transformers``: the KV-cached loop with continuous batching at 16;
* ``vllm`` (when its environment is set up, see ``latentreason vllm-setup``):
  the question and the K vectors handed to vLLM as prompt embeddings, the
  adapter merged into the weights it loads, up to 64 sequences at once.

The prefix is computed with transformers in both; only the text after it is
the engine's. Model loading and vLLM's start-up are timed apart from
answering. With ``latent_checkpoint`` (a trained CODI checkpoint of the same
adapter, e.g. the study's) the method is the trained one; without, the adapter
and step map are initialised from the run's seed alone, identical in both
engines. The section reports examples/s of each engine, their ratio and how
many examples got the identical text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from latentreason.assembly.registry import Registry
from latentreason.bench.end_to_end import answer_timed, vllm_available
from latentreason.bench.settings import LATENT_PREFIX_TARGET, BenchSettings
from latentreason.config import load_config
from latentreason.models.runtime import Runtime

LATENT_ADAPTER = {"rank": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
ENGINES: dict[str, dict[str, Any]] = {
    "transformers": {"engine": "transformers", "continuous_batching": True, "batch_size": 16},
    "vllm": {"engine": "vllm", "batch_size": 64},
}


def latent_prefix_engines(settings: BenchSettings, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Answer ``settings.latent_limit`` problems with CODI on each engine of :data:`ENGINES` (vLLM where set up).

    Returns:
        Per engine: start-up seconds, answer seconds, examples/s, tokens/s,
        truncated chains; for vLLM also its speed-up over transformers and the
        examples whose text is identical; plus the settings measured.
    """
    registry: Registry = Registry()
    runtime: Runtime | None = None
    engines = [name for name in ENGINES if name != "vllm" or (settings.vllm and vllm_available())]
    report: dict[str, Any] = {
        "problems": settings.latent_limit,
        "max_new_tokens": settings.e2e_max_new_tokens,
        "checkpoint": settings.latent_checkpoint,
        "engines": {},
    }
    texts: dict[str, dict[str, list[str]]] = {}
    for name in engines:
        config = load_config(
            overrides={
                "models": {"llm": settings.llm, "device": settings.device, "dtype": "float32"},
                "data": {"task": settings.task, "limit": settings.latent_limit},
                "producer": {"name": "codi"},
                "adapter": LATENT_ADAPTER,
                "checkpoint": settings.latent_checkpoint,
                "generation": {"max_new_tokens": settings.e2e_max_new_tokens, **ENGINES[name]},
            }
        )
        log(f"[latent prefix] codi on {settings.latent_limit} problems, {name} engine ...")
        pipeline, predictions, row = answer_timed(config, registry, runtime)
        runtime = pipeline.runtime
        texts[name] = {p.example.id: p.generations for p in predictions}
        report["engines"][name] = {**row, "examples": len(predictions)}
    if "vllm" in texts:
        row, base = report["engines"]["vllm"], report["engines"]["transformers"]
        row["speedup"] = row["examples_per_s"] / base["examples_per_s"]
        row["identical_text"] = sum(texts["vllm"][key] == text for key, text in texts["transformers"].items())
    return report


def latent_prefix_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """vLLM's examples/s over the transformers engine's after the same latent prefix, with the target (if vLLM ran)."""
    row = report["engines"].get("vllm")
    if row is None:
        return []
    return [
        {
            "name": "latent prefix examples/s, vllm / transformers (codi)",
            "value": row["speedup"],
            "target": f">= {LATENT_PREFIX_TARGET:g}",
            "met": row["speedup"] >= LATENT_PREFIX_TARGET,
        }
    ]


def format_latent_prefix(report: dict[str, Any]) -> list[str]:
    """The section as Markdown lines."""
    method = f"checkpoint {report['checkpoint']}" if report["checkpoint"] else "untrained adapter and step map"
    lines = [
        "",
        f"latent prefix: codi ({method}) on {report['problems']} problems, up to {report['max_new_tokens']} new "
        "tokens, greedy, float32; start-up (load, vLLM's warm-up) apart",
        "",
        "| engine | start-up s | examples/s | tokens/s | truncated | speed-up | identical text |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["engines"].items():
        same = f"{r['identical_text']}/{r['examples']}" if "identical_text" in r else "-"
        lines.append(
            f"| {name} | {r['load_s']:.0f} | {r['examples_per_s']:.3f} | {r['tokens_per_s']:.1f} | {r['truncated']} "
            f"| {r.get('speedup', 1.0):.2f}x | {same} |"
        )
    if "vllm" not in report["engines"]:
        lines.append("(vLLM not measured: its environment is not set up, or --quick)")
    return lines
