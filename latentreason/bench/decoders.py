"""What a decoding controller costs: the same LLM writing the same chains with and without one, in one run.

CoT answers the same GSM8K test problems on the transformers engine
(continuous batching at ``batch_size``), every chain forced to exactly
``decoder_max_new_tokens`` tokens, under each decoder:

* ``none``: plain decoding, the reference;
* ``compress``: LightThinker-style compression with mean pooling (2 gists per
  sentence; training-free): an insert of the gists and a drop of the sentence
  every few tokens, in rows that reach a sentence end at different steps;
* ``soft-thinking``: a mixture of token embeddings as every step's input
  (training-free), chosen through the next-input hook per row.

Tokens/s of each against ``none`` is the loop's overhead for that kind of
controller; the models load once and are shared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from latentreason.assembly.prepare import Prepared, prepare
from latentreason.assembly.registry import Registry
from latentreason.bench.measure import answer_forced
from latentreason.bench.settings import DECODER_TARGET, BenchSettings, bench_config

DECODERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "compress": {"name": "compress", "options": {"pooling": "mean", "gist_tokens": 2, "segment": "sentence"}},
    "soft-thinking": {"name": "soft-thinking"},
}


def decoder_overhead(settings: BenchSettings, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Time CoT under every decoder of :data:`DECODERS` on the same problems (fastest of ``settings.repeats``).

    Returns:
        Per decoder: seconds, new tokens, tokens/s and the ratio of its
        tokens/s to plain decoding's; plus the problems, lengths and dtype.
    """
    registry, runtime = Registry(), None
    dtype = settings.dtypes[0]
    report: dict[str, Any] = {
        "problems": settings.decoder_limit,
        "max_new_tokens": settings.decoder_max_new_tokens,
        "batch_size": settings.batch_size,
        "dtype": dtype,
        "decoders": {},
    }
    for name, decoder in DECODERS.items():
        overrides: dict[str, Any] = {
            "data": {"limit": settings.decoder_limit},
            "generation": {"engine": "transformers", "continuous_batching": True},
        }
        if decoder is not None:
            overrides["decoder"] = decoder
        config = bench_config(
            settings, "cot", dtype=dtype, max_new_tokens=settings.decoder_max_new_tokens, overrides=overrides
        )
        log(
            f"[decoders] {name}: cot on {settings.decoder_limit} problems, {settings.decoder_max_new_tokens} tokens each ..."
        )
        prepared: Prepared = prepare(config, registry, runtime, log=None)
        runtime = prepared.pipeline.runtime
        runs = [answer_forced(prepared.pipeline, prepared.examples) for _ in range(settings.repeats)]
        predictions, seconds = min(runs, key=lambda run: run[1])
        tokens = sum(p.new_tokens for p in predictions)
        report["decoders"][name] = {"seconds": seconds, "new_tokens": tokens, "tokens_per_s": tokens / seconds}
    plain = report["decoders"]["none"]["tokens_per_s"]
    for row in report["decoders"].values():
        row["vs_none"] = row["tokens_per_s"] / plain
    return report


def decoder_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each decoder's tokens/s against plain decoding's, with the target."""
    return [
        {
            "name": f"decoder tokens/s, {name} / none",
            "value": row["vs_none"],
            "target": f">= {DECODER_TARGET:g}",
            "met": row["vs_none"] >= DECODER_TARGET,
        }
        for name, row in report["decoders"].items()
        if name != "none"
    ]


def format_decoders(report: dict[str, Any]) -> list[str]:
    """The section as Markdown lines."""
    lines = [
        "",
        f"decoders: cot on {report['problems']} problems, exactly {report['max_new_tokens']} new tokens each, "
        f"transformers engine, continuous batching at {report['batch_size']}, {report['dtype']}",
        "",
        "| decoder | seconds | new tokens | tokens/s | / none |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {row['seconds']:.1f} | {row['new_tokens']} | {row['tokens_per_s']:.1f} | {row['vs_none']:.2f}x |"
        for name, row in report["decoders"].items()
    ]
    return lines
