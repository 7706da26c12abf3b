"""Prompt construction, placeholder positions and generation from embeddings."""

from __future__ import annotations

import pytest
import torch

from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.components.batching import pad_left
from latentreason.components.prompting import SLOT, encode_chat, end_of_turn_id, marker_ids, placeholder_id
from latentreason.config import GenerationConfig
from latentreason.decoding.generate import generate
from latentreason.testing import tiny_model

QUESTIONS = ["How many clips did Natalia sell in April and May?", "Is frost common?"]
SYSTEM = "Solve the problem step by step."


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma3"])
def llm(request):
    return tiny_model(request.param, hidden=64, seed=3)


def test_insert_lands_exactly_at_the_slot(llm):
    tok = llm.tokenizer
    span = [tok.convert_tokens_to_ids("<|box_start|>"), 7, 7, tok.convert_tokens_to_ids("<|box_end|>")]
    ids, start = encode_chat(tok, SYSTEM, f"{QUESTIONS[0]}\n\n{SLOT}", span)
    assert ids[start : start + 4] == span
    text = tok.decode(ids)
    assert text.index("Natalia") < text.index("<|box_start|>") < text.rindex("assistant")


def test_without_slot_the_insert_follows_the_assistant_header(llm):
    ids, start = encode_chat(llm.tokenizer, SYSTEM, QUESTIONS[1], [5, 5])
    assert start == len(ids) - 2
    assert llm.tokenizer.decode(ids[:start]).endswith("<|im_start|>assistant\n")


def test_special_tokens_are_found_not_assumed(llm):
    tok = llm.tokenizer
    assert marker_ids(tok) == (tok.convert_tokens_to_ids("<|box_start|>"), tok.convert_tokens_to_ids("<|box_end|>"))
    assert placeholder_id(tok) == tok.convert_tokens_to_ids("<|endoftext|>")
    assert end_of_turn_id(tok) == tok.convert_tokens_to_ids("<|im_end|>")


def test_thoughts_replace_exactly_the_placeholder_embeddings(llm):
    injector = PlaceholderInjector(PlaceholderOptions(), llm)
    thoughts = torch.randn(2, 3, llm.hidden_size)  # (B, N, d_llm)
    inputs = injector.build(SYSTEM, QUESTIONS, thoughts)
    plain = injector.build(SYSTEM, QUESTIONS, torch.zeros(2, 3, llm.hidden_size))
    B, _, d = inputs.inputs_embeds.shape
    assert (B, d) == (2, llm.hidden_size)
    changed = (inputs.inputs_embeds - plain.inputs_embeds).abs().sum(-1) > 0  # (B, T)
    assert changed.sum(-1).tolist() == [3, 3]
    tok = llm.tokenizer
    begin, end = (llm.embed(torch.tensor([tok.convert_tokens_to_ids(t)]))[0] for t in ("<|box_start|>", "<|box_end|>"))
    for b in range(2):
        positions = changed[b].nonzero().flatten()
        assert positions.tolist() == list(range(positions.min(), positions.min() + 3))
        assert torch.allclose(inputs.inputs_embeds[b, positions.min() - 1], begin)
        assert torch.allclose(inputs.inputs_embeds[b, positions.max() + 1], end)
        assert torch.allclose(inputs.inputs_embeds[b, positions], thoughts[b])
    lengths = [len(encode_chat(tok, SYSTEM, f"{q}\n\n{SLOT}", [0] * 5)[0]) for q in QUESTIONS]
    assert inputs.attention_mask.sum(-1).tolist() == lengths


def test_labels_cover_only_the_targets(llm):
    injector = PlaceholderInjector(PlaceholderOptions(), llm)
    targets = [[11, 12, 13], [14]]
    inputs = injector.build(SYSTEM, QUESTIONS, torch.zeros(2, 2, llm.hidden_size), targets=targets)
    supervised = [row[row != -100].tolist() for row in inputs.labels]
    assert supervised == targets
    assert inputs.labels[:, -1].tolist() == [13, 14]  # targets end each left-padded row


def _ids(llm, text):
    return llm.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_answer_position_opens_a_well_formed_assistant_turn_with_the_thoughts(llm):
    injector = PlaceholderInjector(PlaceholderOptions(position="answer"), llm)
    ids, slots = injector._encode(SYSTEM, QUESTIONS[0], 3, None)
    chat = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTIONS[0]}<|im_end|>\n<|im_start|>assistant\n"
    )
    placeholder = placeholder_id(llm.tokenizer)
    # one system turn, one closed user turn, one assistant header, then the thoughts as the reply's first
    # tokens: no second header, no end of turn, no markers the LLM never writes
    assert ids == _ids(llm, chat) + [placeholder] * 3
    assert slots == [len(ids) - 3, len(ids) - 2, len(ids) - 1]
    framed = PlaceholderInjector(PlaceholderOptions(position="answer", markers=True), llm)
    assert framed._encode(SYSTEM, QUESTIONS[0], 3, None)[0] == [
        *ids[:-3],
        *marker_ids(llm.tokenizer)[:1],
        *ids[-3:],
        marker_ids(llm.tokenizer)[1],
    ]


def test_turn_position_puts_the_thoughts_in_a_user_turn_of_their_own(llm):
    note = "A hint follows."
    injector = PlaceholderInjector(PlaceholderOptions(position="turn", thoughts_note=note), llm)
    ids, slots = injector._encode(SYSTEM, QUESTIONS[0], 3, None)
    begin, end = marker_ids(llm.tokenizer)
    head = _ids(
        llm,
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTIONS[0]}<|im_end|>\n<|im_start|>user\n{note}\n\n",
    )
    tail = _ids(llm, "<|im_end|>\n<|im_start|>assistant\n")
    assert ids == [*head, begin, *[placeholder_id(llm.tokenizer)] * 3, end, *tail]
    assert slots == [len(head) + 1, len(head) + 2, len(head) + 3]


def test_without_thoughts_every_position_gives_the_plain_prompt(llm):
    plain = encode_chat(llm.tokenizer, SYSTEM, QUESTIONS[0])[0]
    for position in ("question", "turn", "answer"):
        options = PlaceholderOptions(position=position, thoughts_note="A hint follows.")
        assert PlaceholderInjector(options, llm)._encode(SYSTEM, QUESTIONS[0], 0, None) == (plain, [])


def test_generate_from_embeddings_equals_generate_from_ids(llm):
    """No thoughts: the embeddings path must match plain token-id generation, left padding included."""
    injector = PlaceholderInjector(PlaceholderOptions(), llm)
    inputs = injector.build(SYSTEM, QUESTIONS)
    ours = generate(llm, inputs, GenerationConfig(max_new_tokens=12, stop_at_answer=False))
    tok = llm.tokenizer
    rows = [encode_chat(tok, SYSTEM, q)[0] for q in QUESTIONS]
    input_ids = pad_left(rows, tok.pad_token_id)
    mask = pad_left([[1] * len(r) for r in rows], 0)
    reference = llm.model.generate(
        input_ids=input_ids,
        attention_mask=mask,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=llm.eos_token_ids,
    )[:, input_ids.shape[1] :]
    for row, out in zip(reference.tolist(), ours):
        assert row[: len(out.token_ids)] == out.token_ids


def test_answer_complete_stops_each_row(llm):
    import re

    injector = PlaceholderInjector(PlaceholderOptions(), llm)
    inputs = injector.build(SYSTEM, QUESTIONS)
    full = generate(llm, inputs, GenerationConfig(max_new_tokens=8, stop_at_answer=False))
    # stop on the text of the first generated token of row 0: that row stops after 1 token
    first = llm.tokenizer.decode(full[0].token_ids[:1], skip_special_tokens=True)
    assert first
    stopped = generate(llm, inputs, GenerationConfig(max_new_tokens=8), re.compile(re.escape(first)))
    assert len(stopped[0].token_ids) == 1
