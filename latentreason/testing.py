"""Tiny random models for tests, for this project and for plugin authors.

The models are real transformers architectures (Llama, Qwen2, Gemma3) built
from configs with a hidden size of 64 and 2 layers, and a byte-level BPE
tokenizer with a ChatML chat template built in code: everything the engine
touches is real, and nothing is downloaded.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from latentreason.models.spec import LoadedModel

Arch = Literal["llama", "qwen2", "gemma3"]

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|box_start|>", "<|box_end|>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "How many clips did Natalia sell altogether in April and May? 48 / 2 = 24. 48 + 24 = 72.",
    "The final answer is \\boxed{72}. Answer Choices: A) 12 B) 24 C) 36 D) 48 E) 60",
    "Is it common to see frost during some college commencements? Yes. No.",
    "Solve the problem step by step. Think carefully, then give the answer.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 $ % + - * / = ( ) { } [ ] . , : ; ? ! ' \"",
    "system user assistant You are a helpful assistant. Generate tokens that help another model.",
]


@cache
def _tokenizer_json() -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (about 400 tokens) with a ChatML template.

    Its special tokens mirror Qwen2.5's: ``<|endoftext|>`` (pad), ``<|im_end|>``
    (end of turn, eos) and the ``<|box_start|>``/``<|box_end|>`` pair.
    """
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _config(arch: Arch, vocab_size: int, hidden: int, eos: int, pad: int, initializer_range: float):
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
        # Larger than the usual 0.02, so that outputs depend visibly on inputs
        # and a few training steps can move the loss.
        initializer_range=initializer_range,
    )
    if arch == "llama":
        return LlamaConfig(**common)
    if arch == "qwen2":
        return Qwen2Config(**common)
    if arch == "gemma3":
        return Gemma3TextConfig(**common, head_dim=hidden // 4, sliding_window=64)
    raise ValueError(f"unknown tiny architecture {arch!r}; use llama, qwen2 or gemma3")


def tiny_model(arch: Arch = "qwen2", hidden: int = 64, seed: int = 0, initializer_range: float = 0.2) -> LoadedModel:
    """A tiny random causal LM with :func:`tiny_tokenizer`, frozen, in eval mode.

    Args:
        arch: ``"llama"``, ``"qwen2"`` or ``"gemma3"`` (which scales its input
            embeddings by sqrt(hidden) inside the embedding module).
        hidden: hidden size (a multiple of 8).
        seed: seed of the random weights.
        initializer_range: standard deviation of the random weights.
    """
    tokenizer = tiny_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = _config(arch, len(tokenizer), hidden, eos, tokenizer.pad_token_id, initializer_range)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.eval().requires_grad_(False)
    return LoadedModel(model=model, tokenizer=tokenizer, name=f"tiny-{arch}-{hidden}", source="(in memory)")


def save_tiny_model(path: str | Path, arch: Arch = "qwen2", hidden: int = 64, seed: int = 0) -> Path:
    """Save :func:`tiny_model` as a safetensors folder, loadable by path like any model."""
    loaded = tiny_model(arch, hidden, seed)
    path = Path(path)
    loaded.model.save_pretrained(path)
    loaded.tokenizer.save_pretrained(path)
    return path
