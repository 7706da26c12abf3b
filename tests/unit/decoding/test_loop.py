"""The steerable decoding loop: its hooks, its cache edits and its segments, on a tiny model (core only)."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.components.decoder import DecodingController
from latentreason.config import GenerationConfig
from latentreason.decoding.generate import generate
from latentreason.decoding.loop import decode
from latentreason.decoding.segments import Boundaries, SegmentOptions, split_segments
from latentreason.decoding.state import DecodeState
from latentreason.errors import LatentReasonError
from latentreason.models.runtime import Runtime
from latentreason.testing import tiny_model

QUESTIONS = ["Natalia sold 48 clips in April and half as many in May. How many in total?", "What is 2 + 3?"]
GREEDY = GenerationConfig(max_new_tokens=16, stop_at_answer=False)


@pytest.fixture(scope="module")
def llm():
    return tiny_model("qwen2", hidden=64, seed=5)


@pytest.fixture()
def runtime(llm):
    return Runtime(llm=llm)


def _inputs(llm):
    return PlaceholderInjector(PlaceholderOptions(), llm).build("Solve it.", QUESTIONS)


class Recorder(DecodingController):
    """Records the boundaries it sees; changes nothing."""

    def __init__(self, runtime, options=None):
        super().__init__(options or SegmentOptions(segment="tokens", tokens=3), runtime)
        self.rule = Boundaries(self.options, runtime.llm)
        self.boundaries = {0: [], 1: []}

    def after_token(self, state, rows):
        for row in rows:
            if self.rule.ends(state, row):
                self.boundaries[row].append(len(state.tokens[row]))
                state.end_segment(row)


def test_the_loop_without_changes_equals_generate(llm, runtime):
    inputs = _inputs(llm)
    ours = decode(llm, inputs, GREEDY, Recorder(runtime))
    reference = generate(llm, inputs, GREEDY)
    assert [o.token_ids for o in ours] == [r.token_ids for r in reference]
    assert [o.peak_kv for o in ours] == [r.peak_kv for r in reference]
    assert [o.dependency for o in ours] == [r.dependency for r in reference]


def test_next_input_sees_the_drawn_logits_and_the_normed_hidden_state(llm, runtime):
    class Probe(DecodingController):
        """Checks what next_input is given and chooses nothing."""

        calls: ClassVar[list[tuple[int, int]]] = []  # (row key, tokens written before the step)

        def next_input(self, state, row, logits, hidden):
            assert logits.shape == (llm.model.config.vocab_size,) and hidden.shape == (llm.hidden_size,)
            assert torch.allclose(llm.model.lm_head(hidden), logits, atol=1e-5)  # the LM head's input: after the norm
            self.calls.append((state.keys[row], len(state.tokens[row])))
            return None

    inputs = _inputs(llm)
    probed = decode(llm, inputs, GREEDY, Probe(SegmentOptions(), runtime))
    assert [p.token_ids for p in probed] == [r.token_ids for r in generate(llm, inputs, GREEDY)]
    assert all(not p.soft_steps for p in probed)
    for row, out in enumerate(probed):
        assert [n for key, n in Probe.calls if key == row] == list(range(len(out.token_ids)))


def test_a_wrongly_shaped_next_input_is_refused_with_the_shapes(llm, runtime):
    class Flat(DecodingController):
        def next_input(self, state, row, logits, hidden):
            return hidden[None], 0  # (1, d), not (d,)

    with pytest.raises(LatentReasonError, match=r"Flat.next_input must return a \(64,\) float vector.*\(1, 64\)"):
        decode(llm, _inputs(llm), GREEDY, Flat(SegmentOptions(), runtime))


def test_the_hook_is_called_at_the_configured_boundaries(llm, runtime):
    recorder = Recorder(runtime)
    outputs = decode(llm, _inputs(llm), GREEDY, recorder)
    for row, out in enumerate(outputs):
        expected = [n for n in range(3, len(out.token_ids) + 1, 3) if n < len(out.token_ids) or n < 16]
        assert recorder.boundaries[row][: len(expected)] == expected[: len(recorder.boundaries[row])]
        assert recorder.boundaries[row]


def test_dropped_tokens_cannot_influence_later_logits(llm):
    """Change a token after its KV entry is dropped: the next logits do not move."""

    def logits_after(first_token: int) -> torch.Tensor:
        inputs = _inputs(llm)
        state = DecodeState(llm, 2, inputs.inputs_embeds.device)
        with torch.no_grad():
            state.forward(inputs.inputs_embeds, inputs.attention_mask)
            last = state.feed_tokens(torch.tensor([first_token, first_token]))
            dropped = state.generated[0].clone()
            state.drop(0, dropped)
            state.drop(1, dropped)
            state.apply(last)
            assert state.live.shape[1] == inputs.attention_mask.shape[1]  # the dropped column is gone
            return llm.model.lm_head(state.feed_tokens(torch.tensor([7, 7])))

    assert torch.allclose(logits_after(11), logits_after(200), atol=1e-6)


def test_without_the_drop_the_token_does_matter(llm):
    inputs = _inputs(llm)
    results = []
    for token in (11, 200):
        state = DecodeState(llm, 2, inputs.inputs_embeds.device)
        with torch.no_grad():
            state.forward(inputs.inputs_embeds, inputs.attention_mask)
            state.apply(state.feed_tokens(torch.tensor([token, token])))
            results.append(llm.model.lm_head(state.feed_tokens(torch.tensor([7, 7]))))
    assert not torch.allclose(results[0], results[1], atol=1e-4)


def test_sliding_window_models_are_refused(runtime):
    gemma = tiny_model("gemma3", hidden=64)
    inputs = PlaceholderInjector(PlaceholderOptions(), gemma).build("Solve it.", QUESTIONS)
    with pytest.raises(LatentReasonError, match="full-attention"):
        decode(gemma, inputs, GREEDY, Recorder(runtime))


def test_gold_targets_split_into_segments_like_decoding(llm):
    tok = llm.tokenizer
    ids = tok("She sold 48 clips. Then 24 more in May. So 72 in total.", add_special_tokens=False)["input_ids"]
    segments = split_segments(ids, tok, SegmentOptions(segment="sentence", min_tokens=2))
    assert [t for s in segments for t in s] == ids
    assert [tok.decode(s).strip() for s in segments][:2] == ["She sold 48 clips.", "Then 24 more in May."]
