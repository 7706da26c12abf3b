"""An installed plugin with mistakes, through the command line: the errors name its distribution and component."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from latentreason.cli import main

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "latentreason-mistakes"
version = "0.1.0"

[project.entry-points.latentreason]
mistakes = "latentreason_mistakes"

[tool.setuptools]
packages = ["latentreason_mistakes"]
"""

PLUGIN = '''\
"""A plugin written with mistakes."""

from latentreason.plugin import PluginOptions, ThoughtProducer, Thoughts, hookimpl


class ScaleOptions(PluginOptions):
    scale: float = "big"


class Scaled(ThoughtProducer):
    Options = ScaleOptions

    def produce(self, questions, *, instruction, training=False):
        return Thoughts()


class Broken(ThoughtProducer):
    def produce(self, questions, *, instruction, training=False):
        return 1 / 0


@hookimpl
def latentreason_producers():
    return {"scaled": Scaled, "broken": Broken}


@hookimpl
def latentreason_decoder():
    return {}
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory, pip_installed):
    src = tmp_path_factory.mktemp("latentreason-mistakes")
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "latentreason_mistakes").mkdir()
    (src / "latentreason_mistakes" / "__init__.py").write_text(PLUGIN)
    with pip_installed(src, tmp_path_factory.mktemp("site"), "latentreason_mistakes") as site:
        yield site


def test_validate_and_plugins_name_the_distribution(installed, tmp_path):
    runner = CliRunner()
    config = tmp_path / "run.yaml"
    config.write_text("producer: {name: scaled}\n")
    result = runner.invoke(main, ["validate", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Producer 'scaled' of plugin 'mistakes' (latentreason-mistakes) breaks the plugin contract" in result.output
    assert "the default of option 'scale' ('big') is invalid" in result.output
    result = runner.invoke(main, ["plugins"])
    assert result.exit_code == 1
    listing = result.output[result.output.index("mistakes  (latentreason-mistakes)") :]
    assert "hooks: latentreason_producers\n" in listing  # the misspelled hook is not listed as one
    assert "PROBLEM: its hook function latentreason_decoder matches no hook" in listing
    assert "did you mean latentreason_decoders?" in listing


def test_an_exception_in_a_producer_shows_its_traceback_then_names_it(installed, tiny_dirs):
    llm, assistant = tiny_dirs
    args = ["run", "--producer", "broken", "--task", "gsm8k", "--limit", "1", "--max-new-tokens", "4"]
    result = CliRunner().invoke(main, [*args, "--llm", llm, "--assistant", assistant, "--device", "cpu", "--quiet"])
    assert result.exit_code == 1
    assert "ZeroDivisionError: division by zero" in result.output  # the plugin's own traceback
    assert (
        "error: producer 'broken' of plugin 'mistakes' (latentreason-mistakes) raised ZeroDivisionError"
        in result.output
    )
