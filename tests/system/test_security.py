"""The claims of docs/security.md that other tests do not already cover.

Each booby-trapped file below creates a marker file if anything ever
unpickles or imports it; the tests check that nothing does.
"""

from __future__ import annotations

import json
import pickle
import socket
from pathlib import Path

import pytest

from latentreason.api import run
from latentreason.assembly.prepare import prepare
from latentreason.config import TrainConfig, load_config
from latentreason.errors import LatentReasonError
from latentreason.models.loading import load_hf
from latentreason.models.spec import ModelSpec
from latentreason.storage import load_weights, read_meta
from latentreason.testing import save_tiny_model
from latentreason.training.trainer import STATE_FILE, Trainer


class _Trap:
    """Unpickling this calls ``Path(marker).touch()``: arbitrary code, as a malicious pickle would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _trapped_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Trap(marker)))
    return path


def test_a_pickle_renamed_to_safetensors_is_refused_and_never_unpickled(runtime, tmp_path):
    marker = tmp_path / "unpickled"
    fake = _trapped_pickle(tmp_path / "projector.safetensors", marker)
    for read in (lambda: load_weights(fake, {}), lambda: read_meta(fake)):
        with pytest.raises(LatentReasonError, match="is not a readable safetensors file"):
            read()

    config = load_config(
        overrides={"producer": {"name": "softcot", "options": {"n_thoughts": 2, "n_thoughts_train": 2}}}
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    folder = tmp_path / "ckpt"
    folder.mkdir()
    _trapped_pickle(folder / STATE_FILE, marker)
    trainer = Trainer(pipeline, pipeline.task.load("train", limit=2), [], TrainConfig(), folder, progress=False)
    with pytest.raises(LatentReasonError, match="is not a training state written by latentreason .* only safetensors"):
        trainer.run()
    assert not marker.exists()


@pytest.fixture()
def model_folder(tmp_path):
    return save_tiny_model(tmp_path / "model", "qwen2", hidden=32)


def test_pickle_weights_next_to_safetensors_are_never_unpickled(model_folder, tmp_path):
    marker = tmp_path / "unpickled"
    for name in ("pytorch_model.bin", "training_args.bin", "optimizer.pt"):
        _trapped_pickle(model_folder / name, marker)
    loaded = load_hf(ModelSpec(name=str(model_folder)))
    assert loaded.model.config.model_type == "qwen2"
    assert not marker.exists()


def test_custom_code_in_a_model_folder_does_not_run_by_default(model_folder, tmp_path):
    marker = tmp_path / "imported"
    (model_folder / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\nEvilModel = None\n"
    )
    config = json.loads((model_folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilModel", "AutoModelForCausalLM": "evil.EvilModel"}
    (model_folder / "config.json").write_text(json.dumps(config))
    try:
        loaded = load_hf(ModelSpec(name=str(model_folder)))
    except LatentReasonError as exc:  # refusing is as good as ignoring the code
        assert "trust_remote_code" in str(exc)
    else:
        assert type(loaded.model).__module__.startswith("transformers.")
    assert not marker.exists()


def test_a_run_on_local_models_and_shipped_data_makes_no_network_access(tiny_dirs, tmp_path, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    llm, assistant = tiny_dirs
    config = load_config(
        overrides={
            "models": {"llm": llm, "assistant": assistant, "device": "cpu"},
            "producer": {"name": "softcot", "options": {"n_thoughts": 2}},
            "data": {"task": "strategyqa", "limit": 2},
            "generation": {"max_new_tokens": 3},
        }
    )
    summary = run(config, output=tmp_path / "results", progress=False)
    assert summary.n == 2
    assert attempts == []
