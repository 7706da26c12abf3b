"""A third-party plugin, installed with pip into a temporary folder, selected by name."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from latentreason.config import load_config
from latentreason.engine.pipeline import Pipeline
from latentreason.hooks.registry import Registry

PLUGIN = '''
"""A third-party producer: the LLM's own embeddings of a fixed word as thoughts."""
import torch
from pydantic import Field

from latentreason import hookimpl
from latentreason.config import PluginOptions
from latentreason.components.producer import ThoughtProducer, Thoughts


class EchoOptions(PluginOptions):
    word: str = "seven"
    repeat: int = Field(2, gt=0)


class EchoProducer(ThoughtProducer):
    Options = EchoOptions

    @property
    def thought_dim(self):
        return self.runtime.llm.hidden_size

    def produce(self, questions, *, instruction, training=False):
        llm = self.runtime.llm
        ids = llm.tokenizer(self.options.word, add_special_tokens=False)["input_ids"][:1] * self.options.repeat
        vectors = llm.embed(torch.tensor([ids] * len(questions)))  # (B, N, d_llm)
        return Thoughts(vectors=vectors)


@hookimpl
def latentreason_producers():
    return {"echo": EchoProducer}
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    (src / "echo_plugin").mkdir()
    (src / "echo_plugin" / "__init__.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "latentreason-echo"
        version = "0.0.1"
        [project.entry-points.latentreason]
        echo = "echo_plugin"
        [tool.setuptools]
        packages = ["echo_plugin"]
    """)
    )
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
    )
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m.startswith("echo_plugin")]:
        del sys.modules[name]


def test_installed_plugin_is_found_and_selected_by_name(installed, runtime):
    registry = Registry()
    assert "echo" in registry.names("producer")
    info = {i.name: i for i in registry.plugins()}["echo"]
    assert info.distribution == "latentreason-echo"
    config = load_config(
        overrides={"producer": {"name": "echo", "options": {"repeat": 3}}, "generation": {"max_new_tokens": 3}}
    )
    pipeline = Pipeline.from_config(config, registry=registry, runtime=runtime)
    predictions = pipeline.answer(pipeline.task.load(limit=1))
    assert predictions[0].prompt.count("<|endoftext|>") == 3


def test_installed_plugin_options_are_validated(installed):
    from latentreason.errors import ConfigError
    from latentreason.hooks.resolve import resolve

    config = load_config(overrides={"producer": {"name": "echo", "options": {"repeat": 0}}})
    with pytest.raises(ConfigError, match="producer.options.repeat"):
        resolve(config, Registry())
