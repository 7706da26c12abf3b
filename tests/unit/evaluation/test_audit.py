"""The thought audit's measurements on known tensors and a tiny random LLM: spread, effective rank, probe, attention."""

from __future__ import annotations

import pytest
import torch

from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.components.batching import position_ids
from latentreason.evaluation.attention import NEW_TOKENS, attention_mass, eager_attention, mass
from latentreason.evaluation.probe import probe, question_properties, tertiles
from latentreason.evaluation.spread import effective_rank, spread
from latentreason.testing import tiny_model

SYSTEM = "Solve the problem step by step."
QUESTIONS = ["How many clips did Natalia sell in April and May?", "Is frost common? Yes or no, 3 words."]


def test_effective_rank_is_the_participation_ratio_of_the_centred_covariance():
    a, b = 3.0, 1.0
    axes = torch.tensor([[a, 0, 0], [-a, 0, 0], [0, b, 0], [0, -b, 0]]).reshape(4, 1, 3)  # (Q, S, d), mean zero
    # covariance eigenvalues 2a^2 and 2b^2 (times Q): ratio (2a^2 + 2b^2)^2 / (4a^4 + 4b^4)
    assert effective_rank(axes) == pytest.approx((2 * a**2 + 2 * b**2) ** 2 / (4 * a**4 + 4 * b**4))
    assert effective_rank(torch.eye(4).reshape(4, 1, 4)) == pytest.approx(3.0)  # centred simplex: 3 equal directions
    shifted = torch.eye(4).reshape(4, 1, 4) + torch.randn(1, 1, 4) * 100  # a common offset does not count
    assert effective_rank(shifted) == pytest.approx(3.0, rel=1e-6)
    assert effective_rank(torch.randn(1, 2, 5).expand(6, 2, 5)) == 0.0  # nothing varies


def test_spread_separates_constant_thoughts_from_question_specific_ones():
    common = torch.randn(1, 3, 16)  # (1, slots, d)
    constant = spread("producer", common.expand(5, 3, 16), embed_norm=2.0)
    assert constant.specific_share == pytest.approx(0.0, abs=1e-12) and constant.cosine == pytest.approx(1.0)
    assert constant.effective_rank == 0.0
    assert constant.norm_ratio == pytest.approx(common.norm(dim=-1).mean().item() / 2.0)
    orthogonal = spread("projected", torch.eye(4).reshape(4, 1, 4), embed_norm=0.5)  # four orthogonal questions
    assert orthogonal.cosine == pytest.approx(0.0) and orthogonal.norm == pytest.approx(1.0)
    assert orthogonal.norm_ratio == pytest.approx(2.0)
    assert orthogonal.specific_share == pytest.approx(3 / 4)  # |e_q - 1/4|^2 = 3/4
    nearly = spread("producer", common + 0.01 * torch.randn(6, 3, 16), embed_norm=1.0)
    assert 0 < nearly.specific_share < 1e-3 and 0.99 < nearly.cosine < 1
    with pytest.raises(ValueError, match="at least two questions"):
        spread("producer", common, embed_norm=1.0)


def test_the_probe_reads_a_planted_property_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    count, slots, width = 60, 4, 64
    labels = torch.arange(count) % 3  # (Q,)
    common = 100 * torch.randn(1, slots, width, generator=generator)  # a large shared direction, as in a sink
    noise = torch.randn(count, slots, width, generator=generator)  # (Q, S, d)
    planted = noise.clone()
    planted[:, :, :8] += labels[:, None, None].float()  # the class in 8 of 64 dimensions
    read = probe(common + planted, labels)
    assert read.chance == pytest.approx(1 / 3) and read.accuracy > 0.7
    assert probe(common + noise, labels).accuracy < 0.5
    assert probe(common.expand(count, -1, -1), labels).accuracy <= 0.4  # identical vectors: nothing to read
    with pytest.raises(ValueError, match="at least 10 questions"):
        probe(noise[:9], labels[:9])


def test_question_properties_are_dollar_length_tertile_and_number_count_tertile():
    questions = ["a $3 pen", "1 2 3 4 5 and 6,000.5", "x", "it costs $12.50 and 7", "seven", "8 9"]
    props = question_properties(questions)
    assert props["dollar"].tolist() == [1, 0, 0, 1, 0, 0]
    # counts 1, 6, 0, 2, 0, 2: the thirds are cut at 2/3 and 2 (linear quantiles), and equal counts share a class
    assert props["numbers"].tolist() == [1, 2, 0, 1, 0, 1]
    assert tertiles([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).tolist() == [0, 0, 1, 1, 2, 2]
    assert props["length"].tolist() == tertiles([float(len(q)) for q in questions]).tolist()


def test_the_answer_is_probed_by_parity_for_whole_numbers_and_by_value_for_a_few_choices():
    questions = ["q one", "q two", "q three", "q four"]
    assert question_properties(questions, ["18", "7", "-4", "1000"])["answer"].tolist() == [0, 1, 0, 0]
    assert question_properties(questions, ["B", "A", "B", "E"])["answer"].tolist() == [1, 0, 1, 2]
    six = [*questions, "q five", "q six"]
    assert "answer" not in question_properties(six, ["2.5", "3", "4", "5", "6", "7"])  # not whole, too many values
    assert "answer" not in question_properties(questions)  # no answers given


@pytest.fixture(scope="module")
def llm():
    return tiny_model("qwen2", hidden=64, seed=3)


def _inputs(llm, rows=(0, 1)):
    """The placeholder injector's input for ``QUESTIONS[rows]``, each with its own 3 random thoughts."""
    thoughts = torch.randn(len(QUESTIONS), 3, llm.hidden_size, generator=torch.Generator().manual_seed(1))
    injector = PlaceholderInjector(PlaceholderOptions(), llm)
    return injector.build(SYSTEM, [QUESTIONS[r] for r in rows], thoughts[list(rows)])


def test_attention_weights_over_all_keys_sum_to_one(llm):
    inputs = _inputs(llm)
    queries = inputs.attention_mask.bool()  # (B, T): every real position
    with torch.no_grad(), eager_attention(llm):
        out = llm.model(
            inputs_embeds=inputs.inputs_embeds,
            attention_mask=inputs.attention_mask,
            position_ids=position_ids(inputs.attention_mask),
            output_attentions=True,
        )
    assert llm.model.config._attn_implementation != "eager"  # restored
    for layer in out.attentions:
        total = mass(layer, queries, inputs.attention_mask.bool())  # (H, n)
        assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
        on_thoughts = mass(layer, queries, inputs.thought_mask)
        assert (on_thoughts >= 0).all() and (on_thoughts <= total + 1e-6).all()


def test_attention_mass_on_a_batch_is_the_token_weighted_mean_of_its_rows(llm):
    both = attention_mass(llm, _inputs(llm))
    alone = [attention_mass(llm, _inputs(llm, [row])) for row in range(len(QUESTIONS))]
    assert 0 < both.tokens == sum(a.tokens for a in alone) <= 2 * NEW_TOKENS
    for field in ("thoughts", "before"):
        mean = sum(getattr(a, field) * a.tokens for a in alone) / both.tokens
        assert getattr(both, field) == pytest.approx(mean, rel=1e-4)  # left padding changes nothing
    assert 0 < both.thoughts < 1 and 0 < both.before < 1 and both.thoughts + both.before < 1
    with pytest.raises(ValueError, match="does not mark the thought positions"):
        attention_mass(llm, PlaceholderInjector(PlaceholderOptions(), llm).build(SYSTEM, QUESTIONS))
