"""The steerable decoding loop: its hooks, its cache edits and its segments, on a tiny model (core only)."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.components.decoder import DecodingController
from latentreason.config import GenerationConfig
from latentreason.decoding.generate import generate
from latentreason.decoding.loop import decode, decode_stream
from latentreason.decoding.segments import Boundaries, SegmentOptions, split_segments
from latentreason.decoding.state import DecodeState
from latentreason.errors import LatentReasonError
from latentreason.testing import tiny_model


class Recorder(DecodingController):
    """Records the boundaries it sees; changes nothing."""

    def __init__(self, decoding_runtime, options=None):
        super().__init__(options or SegmentOptions(segment="tokens", tokens=3), decoding_runtime)
        self.rule = Boundaries(self.options, decoding_runtime.llm)
        self.boundaries = {0: [], 1: []}

    def after_token(self, state, rows):
        for row in rows:
            if self.rule.ends(state, row):
                self.boundaries[row].append(len(state.tokens[row]))
                state.end_segment(row)


def test_the_loop_without_changes_equals_generate(decoding_llm, decoding_runtime, decoding_inputs, greedy):
    inputs = decoding_inputs
    ours = decode(decoding_llm, inputs, greedy, Recorder(decoding_runtime))
    reference = generate(decoding_llm, inputs, greedy)
    assert [o.token_ids for o in ours] == [r.token_ids for r in reference]
    assert [o.peak_kv for o in ours] == [r.peak_kv for r in reference]
    assert [o.dependency for o in ours] == [r.dependency for r in reference]


def test_next_input_sees_the_drawn_logits_and_the_normed_hidden_state(
    decoding_llm, decoding_runtime, decoding_inputs, greedy
):
    class Probe(DecodingController):
        """Checks what next_input is given and chooses nothing."""

        calls: ClassVar[list[tuple[int, int]]] = []  # (row key, tokens written before the step)

        def next_input(self, state, row, logits, hidden):
            assert logits.shape == (decoding_llm.model.config.vocab_size,) and hidden.shape == (
                decoding_llm.hidden_size,
            )
            assert torch.allclose(
                decoding_llm.model.lm_head(hidden), logits, atol=1e-5
            )  # the LM head's input: after the norm
            self.calls.append((state.keys[row], len(state.tokens[row])))
            return None

    inputs = decoding_inputs
    probed = decode(decoding_llm, inputs, greedy, Probe(SegmentOptions(), decoding_runtime))
    assert [p.token_ids for p in probed] == [r.token_ids for r in generate(decoding_llm, inputs, greedy)]
    assert all(not p.soft_steps for p in probed)
    for row, out in enumerate(probed):
        assert [n for key, n in Probe.calls if key == row] == list(range(len(out.token_ids)))


def test_a_wrongly_shaped_next_input_is_refused_with_the_shapes(
    decoding_llm, decoding_runtime, decoding_inputs, greedy
):
    class Flat(DecodingController):
        def next_input(self, state, row, logits, hidden):
            return hidden[None], 0  # (1, d), not (d,)

    with pytest.raises(LatentReasonError, match=r"Flat.next_input must return a \(64,\) float vector.*\(1, 64\)"):
        decode(decoding_llm, decoding_inputs, greedy, Flat(SegmentOptions(), decoding_runtime))


def test_the_hook_is_called_at_the_configured_boundaries(decoding_llm, decoding_runtime, decoding_inputs, greedy):
    recorder = Recorder(decoding_runtime)
    outputs = decode(decoding_llm, decoding_inputs, greedy, recorder)
    for row, out in enumerate(outputs):
        expected = [n for n in range(3, len(out.token_ids) + 1, 3) if n < len(out.token_ids) or n < 16]
        assert recorder.boundaries[row][: len(expected)] == expected[: len(recorder.boundaries[row])]
        assert recorder.boundaries[row]


class Staggered(DecodingController):
    """Inserts two fixed vectors into each row at a step of its own and drops its text so far, by the row's key."""

    def after_token(self, state, rows):
        for row in rows:
            key, written = state.keys[row], len(state.tokens[row])
            if written in (2 + 2 * key, 11):
                vectors = torch.randn(
                    2, state.llm.hidden_size, generator=torch.Generator().manual_seed(10 * key + written)
                )
                state.insert(row, vectors)
                state.drop(row, state.generated[row])  # the row's text so far
                state.end_segment(row)


def test_rows_that_insert_at_different_steps_decode_as_they_would_alone(decoding_llm, decoding_runtime):
    """Only the inserting rows run an insert; the others get padding columns and write the same text."""
    injector = PlaceholderInjector(PlaceholderOptions(), decoding_llm)
    questions = ["Natalia sold 48 clips in April and half as many in May.", "What is 2 + 3?", "A train goes 60 km/h."]
    config = GenerationConfig(max_new_tokens=14, stop_at_answer=False)

    def run(keys: list[int]) -> dict[int, list[int]]:
        pending = [(injector.build("Solve it.", [questions[k] for k in keys]), keys)]
        source = lambda free: pending.pop() if pending else None  # noqa: E731
        stream = decode_stream(decoding_llm, source, config, Staggered(SegmentOptions(), decoding_runtime), capacity=3)
        return {key: out.token_ids for key, out in stream}

    together = run([0, 1, 2])
    assert together == {k: run([k])[k] for k in range(3)}
    assert all(len(ids) == 14 for ids in together.values())


def test_dropped_tokens_cannot_influence_later_logits(decoding_llm, decoding_inputs):
    """Change a token after its KV entry is dropped: the next logits do not move."""

    def logits_after(first_token: int) -> torch.Tensor:
        inputs = decoding_inputs
        state = DecodeState(decoding_llm, 2, inputs.inputs_embeds.device)
        with torch.no_grad():
            state.forward(inputs.inputs_embeds, inputs.attention_mask)
            last = state.feed_tokens(torch.tensor([first_token, first_token]))
            dropped = state.generated[0].clone()
            state.drop(0, dropped)
            state.drop(1, dropped)
            state.apply(last)
            assert state.live.shape[1] == inputs.attention_mask.shape[1]  # the dropped column is gone
            return decoding_llm.model.lm_head(state.feed_tokens(torch.tensor([7, 7])))

    assert torch.allclose(logits_after(11), logits_after(200), atol=1e-6)


def test_without_the_drop_the_token_does_matter(decoding_llm, decoding_inputs):
    inputs = decoding_inputs
    results = []
    for token in (11, 200):
        state = DecodeState(decoding_llm, 2, inputs.inputs_embeds.device)
        with torch.no_grad():
            state.forward(inputs.inputs_embeds, inputs.attention_mask)
            state.apply(state.feed_tokens(torch.tensor([token, token])))
            results.append(decoding_llm.model.lm_head(state.feed_tokens(torch.tensor([7, 7]))))
    assert not torch.allclose(results[0], results[1], atol=1e-4)


def test_sliding_window_models_are_refused(decoding_runtime, greedy):
    gemma = tiny_model("gemma3", hidden=64)
    inputs = PlaceholderInjector(PlaceholderOptions(), gemma).build("Solve it.", ["What is 2 + 3?"])
    with pytest.raises(LatentReasonError, match="full-attention"):
        decode(gemma, inputs, greedy, Recorder(decoding_runtime))


def test_gold_targets_split_into_segments_like_decoding(decoding_llm):
    tok = decoding_llm.tokenizer
    ids = tok("She sold 48 clips. Then 24 more in May. So 72 in total.", add_special_tokens=False)["input_ids"]
    segments = split_segments(ids, tok, SegmentOptions(segment="sentence", min_tokens=2))
    assert [t for s in segments for t in s] == ids
    assert [tok.decode(s).strip() for s in segments][:2] == ["She sold 48 clips.", "Then 24 more in May."]
