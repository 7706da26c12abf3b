"""The measurements on one dtype: SoftCoT vs CoT, batching, decoding against the bandwidth bound, training."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from functools import partial
from statistics import median
from typing import Any

import torch

from latentreason.api import train as train_api
from latentreason.assembly.pipeline import Pipeline, Prediction
from latentreason.assembly.prepare import Prepared, prepare
from latentreason.assembly.registry import Registry
from latentreason.bench.hardware import best_time, decode_bytes, timed
from latentreason.bench.settings import DEFAULT_MAX_NEW_TOKENS, BenchSettings, bench_config
from latentreason.bench.stages import Cursor, ForwardTimer, Stages, decode_step, llm_bodies, prefill
from latentreason.components.example import Example
from latentreason.decoding.generate import AnswerComplete
from latentreason.decoding.loop import decode
from latentreason.models.runtime import Runtime


def answer_forced(pipeline: Pipeline, examples: list[Example]) -> tuple[list[Prediction], float]:
    """:meth:`Pipeline.answer` (every chain exactly ``max_new_tokens`` long with :func:`bench_config`); predictions and seconds."""
    return timed(lambda: pipeline.answer(examples))


def answer_batches(
    pipeline: Pipeline, examples: list[Example], size: int, repeats: int = 1
) -> tuple[list[Prediction], float, float]:
    """Answer ``examples`` in batches of ``size`` with forced-length chains.

    Args:
        pipeline: the method.
        examples: what to answer.
        size: batch size.
        repeats: each batch runs this often; its fastest run counts.

    Returns:
        The predictions, the total seconds, and the mean time of one LLM
        decoding step (its model forward; every batch makes exactly
        ``max_new_tokens`` forward calls, the first being the prefill).
    """
    n = pipeline.config.generation.max_new_tokens
    predictions, seconds, steps = [], 0.0, []
    for start in range(0, len(examples), size):
        runs = []
        for _ in range(repeats):
            with ForwardTimer(*llm_bodies(pipeline.runtime.llm)) as forward:
                batch, elapsed = answer_forced(pipeline, examples[start : start + size])
            runs.append((elapsed, sum(forward.calls[1:n]) / (n - 1), batch))
        elapsed, step, batch = min(runs, key=lambda run: run[0])
        predictions += batch
        seconds += elapsed
        steps.append(step)
    return predictions, seconds, sum(steps) / len(steps)


def softcot_overhead(softcot: Pipeline, cot: Pipeline, example: Example, repeats: int = 2) -> dict[str, float]:
    """What SoftCoT adds before decoding starts, from the fastest of ``repeats`` runs.

    Both methods decode the same number of tokens, so SoftCoT's extra time is
    in building the input (the assistant forward, projection, injection) and
    in the prefill over its longer prompt.

    Returns:
        ``cot_s`` and ``softcot_s`` (input building plus prefill) and ``extra_s``.
    """

    def build_and_prefill(pipeline: Pipeline) -> Cursor:
        with torch.no_grad():
            return prefill(pipeline.runtime.llm, pipeline.inputs([example]))

    times = {
        name: best_time(partial(build_and_prefill, pipeline), repeats)
        for name, pipeline in (("cot", cot), ("softcot", softcot))
    }
    return {"cot_s": times["cot"], "softcot_s": times["softcot"], "extra_s": times["softcot"] - times["cot"]}


def profile_example(pipeline: Pipeline, example: Example, bandwidth_gb_s: float, check_batch: int) -> dict[str, Any]:
    """Where the time of one batch-1 example goes, and decode speed vs the bandwidth bound.

    The LLM part is one forced-length :func:`generate` call whose model forward
    calls are timed from inside (:class:`ForwardTimer`): the first is the
    prefill, the others are decoding steps, and the rest of the call's time is
    spent outside the model (``transformers``' generation loop and ours). A raw
    loop of :func:`decode_step` gives the per-step time without any of that.

    Args:
        pipeline: the method (its ``max_new_tokens`` is the decode length).
        example: the example.
        bandwidth_gb_s: memory read bandwidth for the bound.
        check_batch: the answer-complete check is also timed at this batch size.

    Returns:
        ``tokens`` (the greedy token ids), ``stages_s`` (seconds per stage),
        ``step_s`` (per decoding step: ``generate`` as a whole, its model
        ``forward``, the raw ``forward_loop``, the ``lm_head`` alone),
        ``answer_check_s`` per batch size, decode tokens/s (after the prefill,
        everything included), the bytes per token, the bound and the achieved
        fraction.
    """
    llm = pipeline.runtime.llm
    n = pipeline.config.generation.max_new_tokens
    stages = Stages(pipeline, [example])
    produced, produce_s = timed(stages.produce)
    projected, project_s = timed(lambda: stages.project(produced))
    inputs, inject_s = timed(lambda: stages.inject(*projected))
    config = pipeline.config.generation
    with ForwardTimer(*llm_bodies(llm)) as forward:
        generated, generate_s = timed(lambda: decode(llm, inputs, config))
    prefill_s, decode_forward_s = forward.calls[0], sum(forward.calls[1:])
    outside_s = generate_s - prefill_s - decode_forward_s
    text = generated[0].text
    score_s = best_time(lambda: stages.score([text]), 5)

    cursor = prefill(llm, inputs)
    start = time.perf_counter()
    for _ in range(n - 1):
        cursor = decode_step(llm, cursor)
    loop_step = (time.perf_counter() - start) / (n - 1)
    hidden = torch.zeros(1, 1, llm.hidden_size, dtype=llm.model.dtype, device=llm.model.device)  # (1, 1, d)
    head = llm.model.get_output_embeddings()
    with torch.no_grad():
        head_s = best_time(lambda: head(hidden), 5)  # logits (1, 1, V)
    check = {}
    pattern = pipeline.evaluator.answer_complete
    if pattern is not None:
        criterion = AnswerComplete(llm.tokenizer, pattern)
        ids = torch.tensor([generated[0].token_ids or [0]])  # (1, n)
        for b in sorted({1, check_batch}):
            rows = ids.repeat(b, 1)  # (b, n)
            check[str(b)] = best_time(partial(criterion, rows, None), 20)

    prompt = int(inputs.attention_mask.sum())
    bytes_ = decode_bytes(llm, prompt + n // 2)
    bound = bandwidth_gb_s * 1e9 / bytes_["bytes"]
    tokens_s = (n - 1) / (generate_s - prefill_s)
    return {
        "prompt_tokens": prompt,
        "new_tokens": n,
        "tokens": generated[0].token_ids,
        "stages_s": {
            "produce": produce_s,
            "project": project_s,
            "inject": inject_s,
            "prefill": prefill_s,
            "decode_forward": decode_forward_s,
            "generate_outside_forward": outside_s,
            "score": score_s,
        },
        "prefill_tokens_s": prompt / prefill_s,
        "step_s": {
            "generate": (generate_s - prefill_s) / (n - 1),
            "forward": decode_forward_s / (n - 1),
            "outside_forward": outside_s / (n - 1),
            "forward_loop": loop_step,
            "lm_head": head_s,
        },
        "answer_check_s": check,
        "decode_tokens_s": tokens_s,
        "bytes_per_token": bytes_,
        "bound_tokens_s": bound,
        "fraction_of_bound": tokens_s / bound,
    }


def training_throughput(settings: BenchSettings, runtime: Runtime, dtype: str) -> dict[str, Any]:
    """Examples/s of ``settings.train_steps`` steps of the real trainer (SoftCoT projector).

    Checkpoints go to a temporary folder that is removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="latentreason-bench-") as out:
        train = {
            "limit": settings.train_steps * settings.train_batch_size,
            "batch_size": settings.train_batch_size,
            "val_limit": 0,
            "epochs": 1,
            "checkpoint_dir": out,
        }
        config = bench_config(settings, "softcot", dtype=dtype, overrides={"train": train})
        result = train_api(config, progress=False, runtime=runtime)
    return {
        "steps": len(result.history),
        "batch_size": settings.train_batch_size,
        "examples_per_s": result.examples_per_s,
        "loss_first": result.history[0]["loss"] if result.history else None,
        "loss_last": result.history[-1]["loss"] if result.history else None,
    }


def measure_dtype(
    settings: BenchSettings,
    dtype: str,
    bandwidth_gb_s: float,
    *,
    full: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Every measurement on models loaded in ``dtype``; the models are freed afterwards.

    Args:
        settings: what to measure on.
        dtype: weight dtype.
        bandwidth_gb_s: memory read bandwidth for the decode bound.
        full: also measure the SoftCoT/CoT ratio and training throughput.
        log: progress messages.
    """
    config = bench_config(settings, "softcot", dtype=dtype)
    runtime = Runtime(config.models, Registry().load_model)
    log(f"[{dtype}] loading {settings.llm} and {settings.assistant} ...")
    _, load_s = timed(lambda: (runtime.llm, runtime.assistant))
    prepared: Prepared[list[Example]] = prepare(
        config, runtime=runtime, log=None
    )  # seeded: the same (untrained) projector in every dtype
    softcot, examples = prepared.pipeline, prepared.examples
    cot = prepare(bench_config(settings, "cot", dtype=dtype), runtime=runtime, log=None).pipeline if full else None
    for producer in ("softcot", "cot") if full else ("softcot",):  # first calls pay one-time costs
        warm = prepare(
            bench_config(settings, producer, dtype=dtype, max_new_tokens=2), runtime=runtime, log=None
        ).pipeline
        answer_forced(warm, examples[:1])
    result: dict[str, Any] = {"load_s": load_s, "examples": len(examples)}

    methods = " (SoftCoT and CoT, interleaved)" if full else ""
    log(f"[{dtype}] batch 1: {len(examples)} examples x {settings.max_new_tokens} tokens{methods}")
    predictions, softcot_s, cot_s, steps = [], [], [], []
    for ex in examples:  # interleaved, so drifting load from other processes hits both methods alike
        if cot is not None:
            cot_s.append(answer_batches(cot, [ex], 1, settings.repeats)[1])
        answered, seconds, step = answer_batches(softcot, [ex], 1, settings.repeats)
        predictions += answered
        softcot_s.append(seconds)
        steps.append(step)
    result["generations"] = [p.generations[0] for p in predictions]
    result["answers"] = [p.score.flexible for p in predictions]

    log(f"[{dtype}] batch {settings.batch_size}: the same examples")
    _, batched_s, batched_step = answer_batches(softcot, examples, settings.batch_size, settings.repeats)
    single_step = sum(steps) / len(steps)
    # Projections to DEFAULT_MAX_NEW_TOKENS: every extra token costs one more decoding forward
    # (at the step time measured here; the growing KV cache makes later steps slightly slower).
    extra = max(0, DEFAULT_MAX_NEW_TOKENS - settings.max_new_tokens)
    batches = -(-len(examples) // settings.batch_size)
    one, many = len(examples) / sum(softcot_s), len(examples) / batched_s
    one_long = len(examples) / (sum(softcot_s) + len(examples) * extra * single_step)
    many_long = len(examples) / (batched_s + batches * extra * batched_step)
    result["throughput"] = {
        "batch_size": settings.batch_size,
        "batch1_examples_s": one,
        "batched_examples_s": many,
        "ratio": many / one,
        "batch1_tokens_s": one * settings.max_new_tokens,
        "batched_tokens_s": many * settings.max_new_tokens,
        "batch1_step_s": single_step,
        "batched_step_s": batched_step,
        "projected_ratio_at_default_length": many_long / one_long,
    }
    if cot is not None:
        mean_cot, mean_softcot = sum(cot_s) / len(cot_s), sum(softcot_s) / len(softcot_s)
        longer = mean_cot + extra * single_step
        stages = softcot_overhead(softcot, cot, examples[0], max(2, settings.repeats))
        ratios = [s / c for s, c in zip(softcot_s, cot_s)]
        result["softcot_vs_cot"] = {
            "cot_s_per_example": mean_cot,
            "softcot_s_per_example": mean_softcot,
            "ratio": mean_softcot / mean_cot,
            "median_ratio": median(ratios),
            "projected_ratio_at_default_length": (longer + mean_softcot - mean_cot) / longer,
            "extra_before_decoding": stages,
            "ratio_from_stages": 1 + stages["extra_s"] / median(cot_s),
            "cot_s": cot_s,
            "softcot_s": softcot_s,
        }

    log(f"[{dtype}] profiling one example: stages and decoding steps")
    result["profile"] = profile_example(softcot, examples[0], bandwidth_gb_s, settings.batch_size)
    if full:
        log(f"[{dtype}] training the projector: {settings.train_steps} steps of batch {settings.train_batch_size}")
        result["training"] = training_throughput(settings, runtime, dtype)
    return result


def token_agreement(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """How two dtypes' greedy batch-1 outputs of the same examples agree.

    Args:
        first: :func:`measure_dtype` result of one dtype.
        second: the same for another dtype.

    Returns:
        ``identical`` generations and ``same_answers`` out of ``n``, and for the
        first example its token count and the index of the first differing
        token (None when all tokens agree).
    """
    a, b = first["profile"]["tokens"], second["profile"]["tokens"]
    diverge = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if diverge is None and len(a) != len(b):
        diverge = min(len(a), len(b))
    return {
        "n": len(first["generations"]),
        "identical": sum(x == y for x, y in zip(first["generations"], second["generations"])),
        "same_answers": sum(x == y for x, y in zip(first["answers"], second["answers"])),
        "first_example_tokens": len(a),
        "first_example_first_difference": diverge,
    }
