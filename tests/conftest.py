"""Shared fixtures: tiny random models (real architectures, no downloads), a core-only registry; the ``plugins`` marker.

Tests live in ``unit/`` (the core), ``plugins/`` (the shipped plugin
packages) and ``system/`` (whole commands, processes, installs, the real
models). Tests that need the shipped plugins (everything under ``plugins/``
and ``system/``, and unit tests marked ``plugins``) are skipped, with the
reason, when those packages are not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentreason import hookimpl
from latentreason.assembly.registry import Registry
from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.components.producer import ThoughtProducer, Thoughts
from latentreason.config import GenerationConfig, PluginOptions
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
def decoding_llm():
    """The decoding loop's tiny Qwen2 (hidden 64, its own seed): the LLM alone, no assistant."""
    return tiny_model("qwen2", hidden=64, seed=5)


@pytest.fixture()
def decoding_runtime(decoding_llm):
    """A runtime holding only :func:`decoding_llm`, as decoding controllers get it."""
    return Runtime(llm=decoding_llm)


@pytest.fixture()
def decoding_inputs(decoding_llm):
    """Two questions, one long and one short, in :func:`decoding_llm`'s prompt (no thoughts)."""
    questions = ["Natalia sold 48 clips in April and half as many in May. How many in total?", "What is 2 + 3?"]
    return PlaceholderInjector(PlaceholderOptions(), decoding_llm).build("Solve it.", questions)


@pytest.fixture()
def greedy():
    """Greedy decoding of 16 tokens that does not stop at an answer."""
    return GenerationConfig(max_new_tokens=16, stop_at_answer=False)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """The tiny pair saved as safetensors folders: ``(llm_dir, assistant_dir)``."""
    root = tmp_path_factory.mktemp("models")
    return (
        str(save_tiny_model(root / "llm", "qwen2", hidden=64, seed=1)),
        str(save_tiny_model(root / "assistant", "llama", hidden=48, seed=2)),
    )


class _Question(ThoughtProducer):
    """A producer of no thoughts: the LLM reads the question alone."""

    def produce(self, questions, *, instruction, training=False):
        return Thoughts()


class _StatesOptions(PluginOptions):
    n_thoughts: int = 2
    n_thoughts_train: int | None = None


class _States(ThoughtProducer):
    """The assistant's last-layer states over each question's last N tokens ``(B, N, d_assistant)``.

    A stand-in for a trained method's producer in core tests: its thoughts
    differ between questions and have the assistant's width, so a projector
    (``latent-map``) is trained to map them into the LLM.
    """

    Options = _StatesOptions
    default_projector = "latent-map"

    @property
    def thought_dim(self) -> int:
        return self.runtime.assistant.hidden_size

    def produce(self, questions, *, instruction, training=False):
        n = (self.options.n_thoughts_train or self.options.n_thoughts) if training else self.options.n_thoughts
        assistant = self.runtime.assistant
        rows = [assistant.tokenizer(q, add_special_tokens=False)["input_ids"][-n:] for q in questions]
        with torch.no_grad():
            hidden = assistant.model.base_model(input_ids=torch.tensor(rows, device=assistant.model.device))
        return Thoughts(vectors=hidden.last_hidden_state.float())  # (B, N, d_assistant)


class _CorePlugin:
    @hookimpl
    def latentreason_producers(self):
        return {"question": _Question, "states": _States}


@pytest.fixture(scope="session")
def core_plugin():
    """The in-test producers: ``question`` (no thoughts) and ``states`` (the assistant's states, ``n_thoughts``)."""
    return _CorePlugin()


@pytest.fixture()
def core_registry(core_plugin):
    """The built-in components and the in-test producers of :func:`core_plugin` only (no installed plugin)."""
    return Registry(plugins=[core_plugin], entry_points=False)


SHIPPED_PLUGINS = ("latentreason_softcot", "latentreason_baselines", "latentreason_lightthinker")
_HERE = Path(__file__).parent


@contextlib.contextmanager
def _pip_installed(src: Path, site: Path, package: str):
    """Install the plugin package at ``src`` into ``site`` (offline, no deps), importable while open.

    On exit ``site`` leaves ``sys.path`` and every module of ``package`` is forgotten.
    """
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*command, "--target", str(site), str(src)], check=True)
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="session")
def pip_installed():
    """``pip_installed(src, site, package)``: a context manager that pip-installs a test plugin package."""
    return _pip_installed


def pytest_collection_modifyitems(config, items):
    """Mark tests under plugins/ and system/ ``plugins``; skip every such test when a shipped plugin is missing."""
    missing = [name for name in SHIPPED_PLUGINS if importlib.util.find_spec(name) is None]
    skip = pytest.mark.skip(
        reason=f"needs the shipped plugins ({', '.join(missing)} missing): pip install -r requirements.txt"
    )
    for item in items:
        if Path(item.fspath).parent in (_HERE / "plugins", _HERE / "system"):
            item.add_marker(pytest.mark.plugins)
        if missing and item.get_closest_marker("plugins"):
            item.add_marker(skip)
