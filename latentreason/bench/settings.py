"""What a benchmark run measures on: :class:`BenchSettings` and the configs of the measured pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentreason.config import GenerationConfig, ModelsConfig, RunConfig, load_config, merge
from latentreason.testing import save_tiny_model

RATIO_TARGET = 1.05  # SoftCoT time per example at most 5% above CoT's


BATCH_TARGET = 3.0  # batch-B throughput at least 3x batch 1


E2E_TARGET = 5.0  # end-to-end examples/s of the fast settings at least 5x the 0.1 defaults
DECODER_TARGET = 0.8  # tokens/s with a decoding controller at least 80% of plain decoding's
LATENT_PREFIX_TARGET = 3.0  # examples/s after a latent prefix on vLLM at least 3x the transformers engine's
BOUND_TARGET = 0.6  # int8 decode at batch 1 at least 60% of the memory-bandwidth bound
DEFAULT_MAX_NEW_TOKENS = GenerationConfig.model_fields["max_new_tokens"].default  # for the projected ratio


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
        dtypes: weight dtypes to measure (``"int8"``: float32 weights, int8
            decoding steps); the first also gets the SoftCoT/CoT ratio and the
            training measurement.
        device: model device (``"auto"``, ``"cpu"``, ...).
        bandwidth_mib: size of the buffer the bandwidth probe reads.
        repeats: every batch-1 and batched run is repeated this often and its
            fastest time counts (use 2-3 on a machine shared with other jobs).
        threads: torch intra-op threads during the run (None: torch's default).
        sections: ``"micro"`` (everything above), ``"end-to-end"``
            (whole evaluations, see :mod:`latentreason.bench.end_to_end`),
            ``"decoders"`` (decoding controllers' overhead) and/or
            ``"latent-prefix"`` (a latent prefix decoded by each engine).
        e2e_limit: test problems of the end-to-end section.
        e2e_max_new_tokens: token cap of the end-to-end section (answers stop earlier).
        decoder_limit: test problems of the decoders section (see
            :mod:`latentreason.bench.decoders`), decoded ``batch_size`` at once.
        decoder_max_new_tokens: exact chain length of the decoders section.
        latent_limit: test problems of the latent-prefix section (see
            :mod:`latentreason.bench.latent_prefix`).
        latent_checkpoint: a trained CODI checkpoint for that section (None:
            its adapter and step map untrained).
        vllm: measure the end-to-end and latent-prefix sections' vLLM variant where its
            environment is set up (``--quick`` turns it off: vLLM's CPU kernels
            cannot run the tiny models' 16-wide heads, and it starts in minutes).
    """

    llm: str = field(default_factory=lambda: ModelsConfig().llm)
    assistant: str = field(default_factory=lambda: ModelsConfig().assistant)
    task: str = "gsm8k"
    limit: int = 8
    max_new_tokens: int = 32
    batch_size: int = 8
    train_steps: int = 2
    train_batch_size: int = 4
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "int8")
    device: str = "auto"
    bandwidth_mib: int = 512
    repeats: int = 1
    threads: int | None = None
    sections: tuple[str, ...] = ("micro",)
    e2e_limit: int = 48
    e2e_max_new_tokens: int = 320
    decoder_limit: int = 16
    decoder_max_new_tokens: int = 128
    latent_limit: int = 32
    latent_checkpoint: str | None = None
    vllm: bool = True


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
        dtype: weight dtype, or ``"int8"``: float32 weights with int8 decoding steps.
        max_new_tokens: decode length (default ``settings.max_new_tokens``).
        overrides: further nested config values, applied last.
    """
    models = {"dtype": "float32", "quantize": "int8"} if dtype == "int8" else {"dtype": dtype}
    base = {
        "models": {"llm": settings.llm, "assistant": settings.assistant, "device": settings.device, **models},
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
