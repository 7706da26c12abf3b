"""The lightthinker controllers (compress, re-inject, window) in the decoding loop and in pipelines, on tiny models."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from latentreason.assembly.prepare import prepare
from latentreason.config import GenerationConfig, load_config
from latentreason.decoding.generate import generate
from latentreason.decoding.loop import decode
from latentreason_lightthinker.compress import Compress, CompressOptions
from latentreason_lightthinker.reinject import Reinject, ReinjectOptions
from latentreason_lightthinker.window import KeepLastTokens, WindowOptions


def test_compression_really_shrinks_the_cache(decoding_llm, decoding_runtime, decoding_inputs, greedy):
    inputs = decoding_inputs
    plain = generate(decoding_llm, inputs, greedy)
    controller = Compress(CompressOptions(segment="tokens", tokens=4, gist_tokens=1), decoding_runtime)
    compressed = decode(decoding_llm, inputs, greedy, controller)
    for p, c in zip(plain, compressed):
        assert c.peak_kv < p.peak_kv
        assert c.dependency < p.dependency


@pytest.mark.parametrize("keep_text", [False, True])
def test_reinjection_rebuilds_the_input_as_configured(decoding_llm, decoding_runtime, decoding_inputs, keep_text):
    inputs = decoding_inputs
    prompt = inputs.attention_mask.sum(-1).tolist()

    class Probe(Reinject):
        seen: ClassVar[dict] = {}  # row key -> (visible generated tokens, visible columns) once 6 tokens are written

        def after_token(self, state, rows):
            for r in rows:
                if len(state.tokens[r]) == 6:
                    self.seen[state.keys[r]] = (
                        int((state.generated[r] & state.live[r]).sum()),
                        int(state.live[r].sum()),
                    )
            super().after_token(state, rows)

    probe = Probe(ReinjectOptions(segment="tokens", tokens=5, vectors=2, keep_text=keep_text), decoding_runtime)
    outputs = decode(decoding_llm, inputs, GenerationConfig(max_new_tokens=7, stop_at_answer=False), probe)
    assert probe.seen, "no row wrote 6 tokens"
    for row, (visible_text, visible) in probe.seen.items():
        assert len(outputs[row].token_ids) >= 6
        # after 5 tokens: boundary, 2 vectors in; then the 6th token is fed
        if keep_text:
            assert visible_text == 6 and visible == prompt[row] + 6 + 2
        else:
            assert visible_text == 1 and visible == prompt[row] + 2 + 1


def test_window_keeps_only_the_last_tokens(decoding_llm, decoding_runtime, decoding_inputs, greedy):
    outputs = decode(decoding_llm, decoding_inputs, greedy, KeepLastTokens(WindowOptions(keep=4), decoding_runtime))
    prompt = decoding_inputs.attention_mask.sum(-1).tolist()
    for row, out in enumerate(outputs):
        assert out.peak_kv <= prompt[row] + 5


def test_pipeline_combines_softcot_with_compression(runtime):
    config = load_config(
        overrides={
            "producer": {"name": "softcot"},
            "decoder": {"name": "compress", "options": {"segment": "tokens", "tokens": 3}},
            "generation": {"max_new_tokens": 8, "stop_at_answer": False},
        }
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    predictions = pipeline.answer(pipeline.task.load(limit=2))
    assert all(p.new_tokens == 8 or p.generations[0] for p in predictions)
    assert all(p.peak_kv > 0 for p in predictions)


def test_trained_compressor_learns_from_the_compressed_history(runtime, tmp_path):
    from latentreason.config import TrainConfig
    from latentreason.training.trainer import Trainer

    torch.manual_seed(0)
    config = load_config(
        overrides={
            "producer": {"name": "cot"},
            "decoder": {"name": "compress", "options": {"pooling": "attention", "segment": "tokens", "tokens": 6}},
        }
    )
    pipeline = prepare(config, runtime=runtime).pipeline
    assert set(pipeline.trainable()) == {"decoder"}
    examples = pipeline.task.load("train", limit=2)
    trainer = Trainer(
        pipeline,
        examples,
        [],
        TrainConfig(epochs=8, batch_size=2, lr=3e-2, warmup_steps=0, max_target_tokens=20),
        tmp_path,
        progress=False,
    )
    targets = [trainer.targets[e.id] for e in examples]
    start = pipeline.decoder.training_loss(pipeline, examples, targets).item()
    trainer.run()
    assert pipeline.decoder.training_loss(pipeline, examples, targets).item() < start - 0.05
