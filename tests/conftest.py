"""Shared fixtures: tiny random models (real architectures, no downloads)."""

from __future__ import annotations

import pytest

from latentreason.models.runtime import Runtime
from latentreason.testing import save_tiny_model, tiny_model


@pytest.fixture(scope="session")
def tiny_llm():
    """A tiny Qwen2 LLM (hidden 64)."""
    return tiny_model("qwen2", hidden=64, seed=1)


@pytest.fixture(scope="session")
def tiny_assistant():
    """A tiny Llama assistant (hidden 48, so a projector must change the width)."""
    return tiny_model("llama", hidden=48, seed=2)


@pytest.fixture()
def runtime(tiny_llm, tiny_assistant):
    """A runtime holding the tiny pair."""
    return Runtime(llm=tiny_llm, assistant=tiny_assistant)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """The tiny pair saved as safetensors folders: ``(llm_dir, assistant_dir)``."""
    root = tmp_path_factory.mktemp("models")
    return (
        str(save_tiny_model(root / "llm", "qwen2", hidden=64, seed=1)),
        str(save_tiny_model(root / "assistant", "llama", hidden=48, seed=2)),
    )
