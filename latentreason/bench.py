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
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import torch

from latentreason.api import evaluation_examples
from latentreason.api import train as train_api
from latentreason.components.batching import position_ids
from latentreason.components.evaluator import Score
from latentreason.components.example import Example
from latentreason.components.injector import LLMInputs
from latentreason.components.producer import Thoughts
from latentreason.config import ModelsConfig, RunConfig, load_config, merge
from latentreason.decoding.generate import AnswerComplete
from latentreason.decoding.loop import decode
from latentreason.engine.pipeline import Pipeline, Prediction
from latentreason.hooks.registry import Registry
from latentreason.models.runtime import Runtime
from latentreason.models.spec import LoadedModel
from latentreason.testing import save_tiny_model

T = TypeVar("T")

RATIO_TARGET = 1.05  # SoftCoT time per example at most 5% above CoT's
BATCH_TARGET = 3.0  # batch-B throughput at least 3x batch 1
DEFAULT_MAX_NEW_TOKENS = 320  # GenerationConfig's default, for the projected ratio


@dataclass(frozen=True)
class BenchSettings:
    """What :func:`run_bench` measures on.

    Attributes:
        llm: the reasoning LLM (alias, folder, ``.gguf`` file or hub id).
        assistant: the SoftCoT assistant.
        task: examples come from this task's evaluation split.
        limit: examples in every measurement.
        max_new_tokens: exact decode length of every chain (at least 2).
        batch_size: the large batch compared with batch 1.
        train_steps: optimizer steps of the training measurement.
        train_batch_size: examples per training step.
        dtypes: weight dtypes to measure; the first also gets the SoftCoT/CoT
            ratio and the training measurement.
        device: model device (``"auto"``, ``"cpu"``, ...).
        bandwidth_mib: size of the buffer the bandwidth probe reads.
        repeats: every batch-1 and batched run is repeated this often and its
            fastest time counts (use 2-3 on a machine shared with other jobs).
        threads: torch intra-op threads during the run (None: torch's default).
    """

    llm: str = field(default_factory=lambda: ModelsConfig().llm)
    assistant: str = field(default_factory=lambda: ModelsConfig().assistant)
    task: str = "gsm8k"
    limit: int = 8
    max_new_tokens: int = 32
    batch_size: int = 8
    train_steps: int = 2
    train_batch_size: int = 4
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    device: str = "auto"
    bandwidth_mib: int = 512
    repeats: int = 1
    threads: int | None = None


def quick_models(folder: str | Path) -> tuple[str, str]:
    """Save the tiny random test pair (the one ``tests/conftest.py`` uses) as model folders.

    Args:
        folder: where to write ``llm/`` and ``assistant/``.

    Returns:
        ``(llm_dir, assistant_dir)``, usable as model names.
    """
    folder = Path(folder)
    llm = save_tiny_model(folder / "llm", "qwen2", hidden=64, seed=1)
    assistant = save_tiny_model(folder / "assistant", "llama", hidden=48, seed=2)
    return str(llm), str(assistant)


def bench_config(
    settings: BenchSettings,
    producer: str,
    *,
    dtype: str = "float32",
    max_new_tokens: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """The run config of one measured pipeline: greedy, no stopping at the answer.

    Args:
        settings: models, task and lengths.
        producer: thought producer name.
        dtype: weight dtype.
        max_new_tokens: decode length (default ``settings.max_new_tokens``).
        overrides: further nested config values, applied last.
    """
    base = {
        "models": {"llm": settings.llm, "assistant": settings.assistant, "dtype": dtype, "device": settings.device},
        "data": {"task": settings.task, "limit": settings.limit},
        "producer": {"name": producer},
        "generation": {
            "max_new_tokens": max_new_tokens or settings.max_new_tokens,
            "min_new_tokens": max_new_tokens or settings.max_new_tokens,
            "batch_size": settings.batch_size,
            "stop_at_answer": False,
        },
    }
    return load_config(overrides=merge(base, overrides or {}))


# -- timing helpers -----------------------------------------------------------


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Call ``fn`` once; return its result and the wall time in seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn``, in seconds (least disturbed by other load)."""
    return min(timed(fn)[1] for _ in range(repeats))


class CpuShare:
    """Context manager: how many cores *other* processes kept busy meanwhile.

    Reads the machine's busy time from ``/proc/stat`` and subtracts this
    process's own CPU time. ``others`` stays None where ``/proc/stat`` is missing.

    Attributes:
        load_at_start: the 1-minute load average on entry.
        others: mean cores used by other processes while open.
    """

    def __init__(self) -> None:
        self.load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self.others: float | None = None

    @staticmethod
    def _busy_s() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        times = os.times()
        return times.user + times.system

    def __enter__(self) -> CpuShare:
        self._start = (time.perf_counter(), self._busy_s(), self._own_s())
        return self

    def __exit__(self, *exc) -> None:
        wall0, busy0, own0 = self._start
        busy1 = self._busy_s()
        wall = time.perf_counter() - wall0
        if busy0 is not None and busy1 is not None and wall > 0:
            self.others = max(0.0, ((busy1 - busy0) - (self._own_s() - own0)) / wall)


def memory_bandwidth(mib: int = 512, repeats: int = 5, device: str = "cpu") -> dict[str, float]:
    """This machine's memory bandwidth, measured with large torch tensors.

    Args:
        mib: buffer size; far larger than the CPU caches.
        repeats: the best of this many passes counts.
        device: where the buffer lives.

    Returns:
        ``read_gb_s`` (a sum over the buffer: what reading weights costs) and
        ``copy_gb_s`` (bytes read plus written by a copy), in 1e9 bytes/s.
    """
    n = mib * 2**20 // 4
    source = torch.ones(n, dtype=torch.float32, device=device)  # (n,), pages touched
    target = torch.empty_like(source)
    sync = torch.cuda.synchronize if source.is_cuda else (lambda: None)

    def read() -> None:
        source.sum()
        sync()

    def copy() -> None:
        target.copy_(source)
        sync()

    copy()
    size = n * 4
    return {
        "read_gb_s": size / best_time(read, repeats) / 1e9,
        "copy_gb_s": 2 * size / best_time(copy, repeats) / 1e9,
        "buffer_mib": float(mib),
    }


def decode_bytes(llm: LoadedModel, context: int) -> dict[str, Any]:
    """Bytes one batch-1 decoding step has to read from memory.

    Every parameter is read once per step, except the input-embedding matrix,
    of which only the new token's row is read (when the LM head is tied to it,
    the head reads the whole matrix and it counts once). The KV cache of
    ``context`` positions is read too.

    Args:
        llm: the model.
        context: cached positions at the step (prompt plus tokens so far).

    Returns:
        ``weight_bytes``, ``kv_bytes``, ``bytes`` (their sum), ``tied`` and
        ``embedding_bytes`` (the input-embedding matrix, read one row at a time).
    """
    model = llm.model
    unique = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    embedding = model.get_input_embeddings().weight  # (V, d)
    head = model.get_output_embeddings()
    tied = head is not None and head.weight.data_ptr() == embedding.data_ptr()
    embedding_bytes = embedding.numel() * embedding.element_size()
    weights = sum(unique.values())
    if not tied:
        weights += embedding.shape[1] * embedding.element_size() - embedding_bytes  # one row instead of the matrix
    config = model.config.get_text_config()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    kv = 2 * config.num_hidden_layers * kv_heads * head_dim * embedding.element_size() * context  # keys and values
    return {
        "weight_bytes": weights,
        "kv_bytes": kv,
        "bytes": weights + kv,
        "tied": tied,
        "embedding_bytes": embedding_bytes,
    }


# -- the stages of Pipeline.answer ---------------------------------------------


class Stages:
    """The steps of :meth:`Pipeline.answer`, callable one at a time for timing.

    ``inject(*project(produce()))`` builds the same input as
    :meth:`Pipeline.inputs` (``tests/benchmarks`` checks it).

    Args:
        pipeline: the method.
        examples: the batch.
    """

    def __init__(self, pipeline: Pipeline, examples: list[Example]) -> None:
        self.pipeline = pipeline
        self.examples = examples
        self.llm = pipeline.runtime.llm
        self.questions = [pipeline.task.format_question(ex) for ex in examples]

    def produce(self) -> Thoughts:
        """The producer's thoughts (for SoftCoT: one assistant forward pass)."""
        with torch.no_grad():
            return self.pipeline.producer.produce(self.questions, instruction=self.pipeline.instruction)

    def project(self, thoughts: Thoughts) -> tuple[Thoughts, torch.Tensor | None]:
        """The projected thoughts ``(B, N, d_llm)``, or None without vectors."""
        if thoughts.vectors is None:
            return thoughts, None
        with torch.no_grad():
            return thoughts, self.pipeline.projector(thoughts.vectors.to(self.llm.model.device))  # (B, N, d_llm)

    def inject(self, thoughts: Thoughts, vectors: torch.Tensor | None) -> LLMInputs:
        """The LLM input: prompt embeddings with the thoughts spliced in."""
        with torch.no_grad():
            return self.pipeline.injector.build(self.pipeline.instruction, self.questions, vectors, thoughts.hints)

    def score(self, texts: list[str]) -> list[Score]:
        """Answer extraction and scoring of one text per example."""
        return [self.pipeline.evaluator.score(text, ex) for text, ex in zip(texts, self.examples)]


@dataclass
class Cursor:
    """A batch in the middle of greedy, KV-cached decoding.

    Attributes:
        cache: the KV cache; a step appends to it in place.
        token: ``(B, 1)`` the next input token of each row (not yet cached).
        attention_mask: ``(B, L)`` over the ``L`` cached positions.
        position: ``(B, 1)`` the position id of ``token``.
    """

    cache: Any
    token: torch.Tensor
    attention_mask: torch.Tensor
    position: torch.Tensor

    def rewind(self) -> None:
        """Drop cache entries written after this cursor was made, to repeat its step."""
        extra = self.cache.get_seq_length() - self.attention_mask.shape[1]
        if extra > 0:
            self.cache.crop(-extra)


def prefill(llm: LoadedModel, inputs: LLMInputs) -> Cursor:
    """One forward pass over the injected prompt; logits only at the last position."""
    mask = inputs.attention_mask  # (B, T)
    positions = position_ids(mask)  # (B, T)
    with torch.no_grad():
        out = llm.model(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )  # logits (B, 1, V)
    return Cursor(out.cache, out.logits[:, -1].argmax(-1, keepdim=True), mask, positions[:, -1:] + 1)


def decode_step(llm: LoadedModel, cursor: Cursor) -> Cursor:
    """One cached greedy decoding step: feed ``cursor.token``, pick the next one."""
    mask = torch.cat(
        [cursor.attention_mask, cursor.attention_mask.new_ones(cursor.token.shape[0], 1)], dim=1
    )  # (B, L+1)
    with torch.no_grad():
        out = llm.model(
            input_ids=cursor.token,
            attention_mask=mask,
            position_ids=cursor.position,
            cache=cursor.cache,
            use_cache=True,
            logits_to_keep=1,
        )  # logits (B, 1, V)
    return Cursor(out.cache, out.logits[:, -1].argmax(-1, keepdim=True), mask, cursor.position + 1)


# -- measurements -------------------------------------------------------------


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
            with ForwardTimer(pipeline.runtime.llm.model.base_model) as forward:
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


class ForwardTimer:
    """Context manager: the wall time of every forward call of ``module`` while open.

    Args:
        module: e.g. the LLM; its forward pre- and post-hooks take the times.

    Attributes:
        calls: seconds per forward call, in call order.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.calls: list[float] = []
        self._started = 0.0

    def _start(self, module: torch.nn.Module, args: tuple) -> None:
        self._started = time.perf_counter()

    def _stop(self, module: torch.nn.Module, args: tuple, output: object) -> None:
        self.calls.append(time.perf_counter() - self._started)

    def __enter__(self) -> ForwardTimer:
        self._hooks = [
            self.module.register_forward_pre_hook(self._start),
            self.module.register_forward_hook(self._stop),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()


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
    with ForwardTimer(llm.model.base_model) as forward:
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
    torch.manual_seed(config.seed)  # the same (untrained) projector in every dtype
    softcot = Pipeline.from_config(config, runtime=runtime)
    cot = Pipeline.from_config(bench_config(settings, "cot", dtype=dtype), runtime=runtime) if full else None
    examples = evaluation_examples(softcot)
    for producer in ("softcot", "cot") if full else ("softcot",):  # first calls pay one-time costs
        warm = Pipeline.from_config(bench_config(settings, producer, dtype=dtype, max_new_tokens=2), runtime=runtime)
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
    if full:
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


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
            for i, dtype in enumerate(settings.dtypes):
                report[dtype] = measure_dtype(settings, dtype, bandwidth["read_gb_s"], full=i == 0, log=log)
                gc.collect()  # the models of this dtype are gone before the next ones load
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(default_threads)
    if len(settings.dtypes) > 1:
        base, other = settings.dtypes[:2]
        report["dtype_agreement"] = {"dtypes": [base, other], **token_agreement(report[base], report[other])}
    report["machine"] = {
        "cpu": _cpu_name(),
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


def format_report(report: dict[str, Any]) -> str:
    """The report as two short Markdown tables and notes."""
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
        "generate_outside_forward": "generate() outside the model forward",
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
        f"decode step ({dtypes[0]}, batch 1): generate() {step['generate'] * 1e3:.1f} ms = model forward "
        f"{step['forward'] * 1e3:.1f} ms + {step['outside_forward'] * 1e3:.2f} ms outside it; raw forward loop "
        f"{step['forward_loop'] * 1e3:.1f} ms; lm_head alone {step['lm_head'] * 1e3:.1f} ms "
        f"({step['lm_head'] / step['forward']:.0%} of the forward)"
    )
    if p["answer_check_s"]:
        notes += "; answer-complete check (stop_at_answer, off here): " + ", ".join(
            f"{s * 1e3:.2f} ms per step at batch {b}" for b, s in p["answer_check_s"].items()
        )
    lines.append(notes)
    machine = report["machine"]
    others = machine["other_processes_cores"]
    lines.append(
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} with {machine['torch_threads']} threads; "
        f"memory read {bandwidth:.1f} GB/s, copy {machine['bandwidth']['copy_gb_s']:.1f} GB/s"
    )
    if others is not None and others > 0.25:
        lines.append(
            f"warning: other processes kept {others:.1f} of {machine['cores']} cores busy during the benchmark "
            f"(load {machine['load_at_start']:.1f} at start): the times are slower and noisier than on an idle machine."
        )
    return "\n".join(lines)
