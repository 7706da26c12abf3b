"""The real default pair on two GSM8K questions (slow: run with ``-m slow``)."""

from __future__ import annotations

import json

import pytest

from latentreason import load_config, run
from latentreason.models import is_cached
from latentreason.registry import Registry
from latentreason.runtime import Runtime

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_runtime():
    config = load_config()
    if not (is_cached(config.models.llm) and is_cached(config.models.assistant)):
        pytest.skip("default models not cached: run `latentreason models fetch` first")
    return Runtime(config.models, Registry())


@pytest.mark.parametrize("producer", ["cot", "softcot"])
def test_default_pair_answers_two_gsm8k_questions(real_runtime, producer, tmp_path):
    config = load_config(overrides={
        "producer": {"name": producer},
        "data": {"task": "gsm8k", "limit": 2},
        "generation": {"max_new_tokens": 256},
    })
    summary = run(config, output=tmp_path, progress=False, runtime=real_runtime)
    assert summary.n == 2
    records = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    for record in records:
        assert record["new_tokens"] > 10
        assert any(ch.isdigit() for ch in record["generation"])
        assert record["flexible"] is not None  # the LLM wrote a number we could extract
    if producer == "softcot":
        assert records[0]["prompt"].count("<|endoftext|>") == 4  # the 4 soft-thought positions
