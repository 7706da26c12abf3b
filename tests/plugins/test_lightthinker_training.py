"""LightThinker as published: learned gists and an adapter trained under the gist mask, equal to what decoding computes."""

from __future__ import annotations

import pytest
import torch

from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.config import AdapterConfig, load_config
from latentreason.models.runtime import Runtime
from latentreason.testing import tiny_model
from latentreason_lightthinker.gist_mask import IGNORED, attention_mask, lay_out, visible

pytest.importorskip("peft")

ADAPTER = {"rank": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
DECODER = {"name": "compress", "options": {"pooling": "learned", "gist_tokens": 2, "segment": "tokens", "tokens": 3}}


def _pipeline(attention: str = "sdpa", producer: str = "cot") -> Pipeline:
    llm = tiny_model("qwen2", hidden=64, seed=4)
    llm.model.config._attn_implementation = attention
    runtime = Runtime(llm=llm, assistant=tiny_model("llama", hidden=48, seed=2), adapter=AdapterConfig(**ADAPTER))
    for p in runtime.adapter.parameters():  # a trained-looking adapter, so that it matters
        torch.nn.init.normal_(p, std=0.2)
    config = load_config(overrides={"producer": {"name": producer}, "adapter": ADAPTER, "decoder": DECODER})
    return Pipeline(resolve(config, Registry()), runtime)


def test_the_layout_predicts_each_token_once_and_across_gists_from_the_last_gist():
    layout = lay_out(3, [[10, 11], [12, 13, 14], [15]], gists=2)
    assert layout.kinds == [0, 0, 0, 1, 1, -1, -1, 2, 2, 2, -2, -2, 3]
    predicted = [label for label in layout.labels if label != IGNORED]
    assert predicted == [10, 11, 12, 13, 14, 15]
    assert layout.labels[2] == 10 and layout.labels[6] == 12 and layout.labels[11] == 15  # prompt end, last gists
    assert layout.labels[4] == IGNORED  # a segment's last token is followed by gists, not predicted from


def test_the_mask_hides_earlier_segments_and_shows_earlier_gists():
    kinds = torch.tensor(lay_out(2, [[10, 11], [12, 13]], gists=1).kinds)  # [0 0 1 1 -1 2 2]
    seen = visible(kinds)
    assert seen[5].tolist() == [True, True, False, False, True, True, False]  # segment 2 sees prompt, gist 1, itself
    assert seen[4].tolist() == [True, True, True, True, True, False, False]  # gist 1 sees prompt and segment 1
    assert seen[1].tolist() == [True, True, False, False, False, False, False]  # the prompt sees the prompt
    for implementation, dtype in (("sdpa", torch.bool), ("eager", torch.float32)):
        mask = attention_mask([seen, seen[:3, :3]], implementation, torch.float32)
        assert mask.shape == (2, 1, 7, 7) and mask.dtype == dtype
    with pytest.raises(ValueError, match="sdpa or eager"):
        attention_mask([seen], "flash_attention_2", torch.float32)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_training_under_the_mask_computes_what_compressed_decoding_computes(attention):
    pipeline = _pipeline(attention)
    examples = pipeline.task.load(pipeline.task.train_split, limit=2)
    tokenizer = pipeline.runtime.llm.tokenizer
    targets = [tokenizer(pipeline.task.target_text(ex), add_special_tokens=False)["input_ids"][:14] for ex in examples]
    with torch.no_grad():
        masked = pipeline.decoder.masked_loss(pipeline, examples, targets)
        stepwise = pipeline.decoder.stepwise_loss(pipeline, examples, targets)  # the decoder's own cache rewriting
    assert torch.allclose(masked, stepwise, atol=1e-5)


def test_what_a_token_may_not_see_cannot_change_its_logits():
    """Without gists nothing carries segment 1 forward: under the mask, segment 2 cannot depend on it at all."""
    pipeline = _pipeline()
    llm = pipeline.runtime.llm
    prompt = llm.embed(torch.tensor([[5, 6, 7]]))[0]  # (3, d)

    def logits(first_segment: list[int], with_mask: bool) -> torch.Tensor:
        kinds = torch.tensor(lay_out(3, [first_segment, [20, 21, 22]], gists=0).kinds)  # prompt, segment 1, segment 2
        embeds = torch.cat([prompt, llm.embed(torch.tensor([*first_segment, 20, 21, 22]))])  # (T, d)
        causal = torch.ones(len(kinds), len(kinds), dtype=torch.bool).tril()
        mask = attention_mask([visible(kinds) if with_mask else causal], "sdpa", embeds.dtype)  # (1, 1, T, T)
        with torch.no_grad():
            hidden = llm.model.base_model(
                inputs_embeds=embeds[None], attention_mask=mask, position_ids=torch.arange(len(kinds))[None]
            ).last_hidden_state  # (1, T, d)
        return llm.model.lm_head(hidden[0, kinds == 2])  # the second segment's logits

    assert torch.allclose(logits([30, 31, 32], True), logits([40, 41, 42], True), atol=1e-6)  # hidden: no effect
    assert not torch.allclose(
        logits([30, 31, 32], False), logits([40, 41, 42], False), atol=1e-4
    )  # visible: it matters


def test_learned_gists_the_adapter_and_the_projector_train_together(tmp_path):
    from latentreason.training.trainer import Trainer

    pipeline = _pipeline(producer="softcot")
    assert set(pipeline.trainable()) == {"projector", "decoder", "adapter"}
    examples = pipeline.task.load(pipeline.task.train_split, limit=4)
    config = pipeline.config.train.model_copy(
        update={"batch_size": 2, "lr": 0.02, "warmup_steps": 0, "epochs": 2, "max_target_tokens": 24}
    )
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in pipeline.trainable().items()}
    result = Trainer(pipeline, examples, [], config, tmp_path, progress=False).run()
    for name, module in pipeline.trainable().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters())), name
    from latentreason.storage import stored_components

    assert stored_components(result.weights) == {"projector", "decoder", "adapter"}
    answered = pipeline.answer(pipeline.task.load(limit=1))
    assert answered[0].peak_kv < answered[0].new_tokens + 400  # decoding with the trained gists runs
