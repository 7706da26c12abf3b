"""The plugin built from docs/plugins.md alone: installed with pip, found, selected by name, run; and the plugin API's rules."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import latentreason.plugin
from latentreason.config import load_config
from latentreason.engine.pipeline import Pipeline
from latentreason.errors import ConfigError
from latentreason.hooks import specs
from latentreason.hooks.registry import Registry
from latentreason.hooks.resolve import resolve

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>[\w./-]+) -->\n```\w*\n(?P<code>.*?)```", re.S)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The tutorial's package, written from the page's code blocks and pip-installed into a folder."""
    src = tmp_path_factory.mktemp("latentreason-hello")
    files = {m["path"]: m["code"] for m in FILE_BLOCK.finditer(DOC)}
    assert {
        "pyproject.toml",
        "latentreason_hello/plugin.py",
        "latentreason_hello/producer.py",
        "latentreason_hello/decoder.py",
    } <= set(files)
    for path, code in files.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(code)
    site = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*command, "--target", str(site), str(src)], check=True)
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m.startswith("latentreason_hello")]:
        del sys.modules[name]


def test_the_tutorial_plugin_installs_and_runs(installed, runtime):
    registry = Registry()
    info = {i.name: i for i in registry.plugins()}["hello"]
    assert info.distribution == "latentreason-hello"
    assert info.provides == {"producer": ("question-mean",), "decoder": ("sink-window",)}
    settings = {
        "producer": {"name": "question-mean", "options": {"n_thoughts": 3}},
        "generation": {"max_new_tokens": 12, "stop_at_answer": False},
    }
    plain = Pipeline.from_config(load_config(overrides=settings), registry, runtime)
    windowed = Pipeline.from_config(
        load_config(overrides={**settings, "decoder": {"name": "sink-window", "options": {"sink": 2, "keep": 3}}}),
        registry,
        runtime,
    )
    examples = plain.task.load(limit=2)
    full, short = plain.answer(examples), windowed.answer(examples)
    assert full[0].prompt.count("<|endoftext|>") == 3  # the three thoughts at the placeholders
    for a, b in zip(full, short):
        prompt = a.peak_kv - a.new_tokens
        if b.new_tokens > 5:
            assert b.peak_kv <= prompt + 2 + 3 + 1  # the sink, the window and the token being written
    with pytest.raises(ConfigError, match="producer.options.n_thoughts"):
        resolve(load_config(overrides={"producer": {"name": "question-mean", "options": {"n_thoughts": 0}}}), registry)


def test_the_shipped_plugins_import_only_the_plugin_api():
    offenders = []
    for path in sorted((ROOT / "plugins").glob("*/latentreason_*/*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in getattr(node, "names", [])]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT)}: {m}"
                for m in modules
                if m.split(".")[0] == "latentreason" and m != "latentreason.plugin"
            ]
    assert offenders == []


def test_every_hook_and_every_name_of_the_plugin_api_is_documented():
    hooks = [name for name in dir(specs) if name.startswith("latentreason_")]
    assert len(hooks) == 7
    missing = [name for name in [*hooks, *latentreason.plugin.__all__] if f"`{name}" not in DOC]
    assert missing == []
