"""The plugin built from docs/plugins.md alone: installed with pip, found, selected by name, run; the decoding
controllers of docs/decoding.md, built and run; and the plugin API's rules."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import torch

import latentreason.plugin
from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.config import load_config
from latentreason.errors import ConfigError
from latentreason.hooks import specs
from latentreason.plugin import GenerationConfig, Runtime, decode

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>[\w./-]+) -->\n```\w*\n(?P<code>.*?)```", re.S)


@pytest.fixture(scope="module")
def installed(tmp_path_factory, pip_installed):
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
    with pip_installed(src, tmp_path_factory.mktemp("site"), "latentreason_hello") as site:
        yield site


def test_the_tutorial_plugin_installs_and_runs(installed, runtime):
    registry = Registry()
    info = {i.name: i for i in registry.plugins()}["hello"]
    assert info.distribution == "latentreason-hello"
    assert info.provides == {"producer": ("question-mean",), "decoder": ("sink-window",)}
    settings = {
        "producer": {"name": "question-mean", "options": {"n_thoughts": 3}},
        "generation": {"max_new_tokens": 12, "stop_at_answer": False},
    }
    plain = prepare(load_config(overrides=settings), registry, runtime).pipeline
    windowed = prepare(
        load_config(overrides={**settings, "decoder": {"name": "sink-window", "options": {"sink": 2, "keep": 3}}}),
        registry,
        runtime,
    ).pipeline
    examples = plain.task.load(limit=2)
    full, short = plain.answer(examples), windowed.answer(examples)
    assert full[0].prompt.count("<|endoftext|>") == 3  # the three thoughts at the placeholders
    for a, b in zip(full, short):
        prompt = a.peak_kv - a.new_tokens
        if b.new_tokens > 5:
            assert b.peak_kv <= prompt + 2 + 3 + 1  # the sink, the window and the token being written
    with pytest.raises(ConfigError, match="producer.options.n_thoughts"):
        resolve(load_config(overrides={"producer": {"name": "question-mean", "options": {"n_thoughts": 0}}}), registry)


def _doc_module(path: Path):
    """Import a code file written from a docs page."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_decoding_page_controllers_run(tmp_path, tiny_llm):
    page = (ROOT / "docs" / "decoding.md").read_text(encoding="utf-8")
    files = {m["path"]: m["code"] for m in FILE_BLOCK.finditer(page)}
    assert set(files) == {"forget_segments.py", "latent_steps.py"}
    modules = {}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
        modules[name] = _doc_module(tmp_path / name)
    forget, latent = modules["forget_segments.py"], modules["latent_steps.py"]
    assert set(forget.latentreason_decoders()) == {"forget"}
    assert set(latent.latentreason_decoders()) == {"latent-steps"}
    llm, runtime = tiny_llm, Runtime(llm=tiny_llm)
    questions = ["Natalia sold 48 clips in April and half as many in May. How many in total?", "What is 2 + 3?"]
    inputs = PlaceholderInjector(PlaceholderOptions(), llm).build("Solve it.", questions)
    config = GenerationConfig(max_new_tokens=10, stop_at_answer=False)
    plain = decode(llm, inputs, config)

    dropped = decode(
        llm, inputs, config, forget.ForgetSegments(forget.SegmentOptions(segment="tokens", tokens=3), runtime)
    )
    assert all(d.peak_kv < p.peak_kv for d, p in zip(dropped, plain) if len(p.token_ids) > 4)

    latent_steps = decode(llm, inputs, config, latent.LatentSteps(latent.LatentStepsOptions(steps=3), runtime))
    for b, out in enumerate(latent_steps):
        assert out.soft_steps == [0, 1, 2]
        # the same, written out with transformers: inputs_embeds and the KV cache, one position per step
        prompt = inputs.inputs_embeds[b][inputs.attention_mask[b].bool()]  # (T, d)
        tokens: list[int] = []
        with torch.no_grad():
            step = llm.model.model(inputs_embeds=prompt[None], use_cache=True)
            while len(tokens) < config.max_new_tokens and (not tokens or tokens[-1] not in llm.eos_token_ids):
                hidden = step.last_hidden_state[0, -1]  # (d,) after the final norm
                tokens.append(int(llm.model.lm_head(hidden).argmax()))
                vector = (
                    hidden * llm.embed_norm / hidden.norm() if len(tokens) <= 3 else llm.embed(torch.tensor(tokens[-1]))
                )
                step = llm.model.model(inputs_embeds=vector[None, None], cache=step.cache, use_cache=True)
        assert out.token_ids == tokens
    assert [out.token_ids for out in latent_steps] != [p.token_ids for p in plain]


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
