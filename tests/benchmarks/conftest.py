"""Benchmark fixtures: the tiny test pair by default, the real default pair with ``--real-models``.

The project's pytest config passes ``--benchmark-disable``, so in the normal
test run every benchmark runs its function once, as a smoke test. Measure for
real with::

    python -m pytest tests/benchmarks --benchmark-enable                 # tiny models
    python -m pytest tests/benchmarks --benchmark-enable --real-models   # the default pair

``--real-models`` is registered by this file, so pass it together with the
``tests/benchmarks`` path (pytest reads the option before it collects ``tests/``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.bench.settings import BenchSettings, bench_config
from latentreason.components.example import Example
from latentreason.config import ModelsConfig
from latentreason.models.runtime import Runtime
from latentreason.models.zoo import is_cached


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--real-models``."""
    parser.addoption(
        "--real-models",
        action="store_true",
        default=False,
        help="benchmarks: use the real default model pair (needs the model cache) instead of tiny random models",
    )


@dataclass(frozen=True)
class Scale:
    """How big the benchmarked work is.

    Attributes:
        examples: GSM8K examples per batch.
        max_new_tokens: exact chain length in end-to-end runs.
        rounds: timed rounds of the end-to-end benchmarks (when enabled).
        step_rounds: timed rounds of the single decoding step.
    """

    examples: int
    max_new_tokens: int
    rounds: int
    step_rounds: int


TINY = Scale(examples=2, max_new_tokens=8, rounds=5, step_rounds=50)
REAL = Scale(examples=1, max_new_tokens=16, rounds=3, step_rounds=10)


@pytest.fixture(scope="session")
def real_models(request: pytest.FixtureRequest) -> bool:
    """Whether ``--real-models`` was given."""
    return bool(request.config.getoption("--real-models", default=False))


@pytest.fixture(scope="session")
def scale(real_models: bool) -> Scale:
    """The work size for the chosen models."""
    return REAL if real_models else TINY


@pytest.fixture(scope="module", autouse=True)
def _one_thread_for_tiny_models(real_models: bool):
    """Tiny models run with one torch thread; restored after each module.

    Their ops are so small that a second thread only adds synchronisation, and
    on a machine shared with another job two threads make them 10-80x slower.
    The real models keep torch's default.
    """
    if real_models:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def bench_runtime(request: pytest.FixtureRequest, real_models: bool) -> Runtime:
    """The models to benchmark: tiny random ones, or the cached default pair."""
    if real_models:
        models = ModelsConfig()
        if not (is_cached(models.llm) and is_cached(models.assistant)):
            pytest.skip("--real-models: the default models are not cached; run `latentreason models fetch` first")
        return Runtime(models, Registry().load_model)
    llm, assistant = request.getfixturevalue("tiny_llm"), request.getfixturevalue("tiny_assistant")
    # Named after the tiny models, so no checkpoint made for other models is picked up.
    return Runtime(ModelsConfig(llm=llm.name, assistant=assistant.name), llm=llm, assistant=assistant)


@pytest.fixture(scope="session")
def make_pipeline(bench_runtime: Runtime, scale: Scale) -> Callable[[str], Pipeline]:
    """Build (once per producer) a greedy GSM8K pipeline on the benchmark models."""
    settings = BenchSettings(
        llm=bench_runtime.models.llm,
        assistant=bench_runtime.models.assistant,
        limit=scale.examples,
        max_new_tokens=scale.max_new_tokens,
    )
    built: dict[str, Pipeline] = {}

    def make(producer: str) -> Pipeline:
        if producer not in built:
            options = {"max_hint_tokens": scale.max_new_tokens} if producer == "assist-cot" else {}
            config = bench_config(settings, producer, overrides={"producer": {"options": options}})
            built[producer] = prepare(config, runtime=bench_runtime).pipeline
        return built[producer]

    return make


@pytest.fixture(scope="session")
def examples(make_pipeline: Callable[[str], Pipeline]) -> list[Example]:
    """The first GSM8K test examples."""
    return make_pipeline("softcot").plan.examples()
