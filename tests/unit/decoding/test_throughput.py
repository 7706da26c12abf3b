"""Continuous batching, int8 decoding and the dtype choice, on tiny models."""

from __future__ import annotations

import re

import pytest
import torch

from latentreason.assembly.prepare import prepare
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import resolve
from latentreason.builtins.placeholder import PlaceholderInjector, PlaceholderOptions
from latentreason.config import GenerationConfig, load_config
from latentreason.decoding.loop import decode, decode_stream
from latentreason.errors import ConfigError
from latentreason.models.quantization import Int8Linear, check_int8, int8_twin
from latentreason.models.runtime import Runtime, dtype_warning, machine_label, resolve_dtype

QUESTIONS = [
    "Natalia sold 48 clips in April and half as many in May. How many in total?",
    "What is 2 + 3?",
    "A farmer has 10 cows and buys 4 more. How many cows?",
    "Is 7 larger than 5?",
    "How many legs do 3 dogs have?",
]


def _config(producer="cot", **generation):
    return load_config(
        overrides={
            "producer": {"name": producer},
            "data": {"task": "gsm8k", "limit": 7},
            "generation": {"max_new_tokens": 12, **generation},
        }
    )


def _generations(runtime, producer="cot", **generation):
    pipeline = prepare(_config(producer, **generation), runtime=runtime).pipeline
    examples = pipeline.task.load(limit=7)
    return [(p.example.id, p.generations, p.truncated) for p in pipeline.answer(examples)]


@pytest.mark.plugins  # runs the shipped producers
@pytest.mark.parametrize("producer", ["cot", "softcot"])
def test_continuous_batching_writes_what_batch_one_writes(runtime, producer):
    alone = _generations(runtime, producer, batch_size=1)
    batched = _generations(runtime, producer, batch_size=3)
    assert batched == alone


@pytest.mark.plugins  # runs the shipped producers
def test_every_chain_of_a_voted_example_is_kept_together(runtime):
    torch.manual_seed(3)
    pipeline = prepare(_config(batch_size=4, do_sample=True, samples=3, temperature=1.5), runtime=runtime).pipeline
    examples = pipeline.task.load(limit=5)
    predictions = pipeline.answer(examples)
    assert [p.example.id for p in predictions] == [e.id for e in examples]
    assert all(len(p.generations) == 3 for p in predictions)


def test_rows_admitted_later_decode_as_they_would_alone(decoding_llm):
    injector = PlaceholderInjector(PlaceholderOptions(), decoding_llm)
    config = GenerationConfig(max_new_tokens=10, stop_at_answer=False)
    alone = [decode(decoding_llm, injector.build("Solve it.", [q]), config)[0].token_ids for q in QUESTIONS]
    queue = list(enumerate(QUESTIONS))
    asked = []

    def source(free):  # one prompt at a time, so rows join a batch already decoding
        asked.append(free)
        if not queue:
            return None
        i, q = queue.pop(0)
        return injector.build("Solve it.", [q]), [i]

    streamed = dict(decode_stream(decoding_llm, source, config, capacity=2))
    assert {i: out.token_ids for i, out in streamed.items()} == dict(enumerate(alone))
    assert max(asked) == 2 and 1 in asked  # the second row was admitted while the first decoded


def test_a_chain_cut_by_the_cap_is_marked_truncated(decoding_llm):
    inputs = PlaceholderInjector(PlaceholderOptions(), decoding_llm).build("Solve it.", QUESTIONS[:2])
    outputs = decode(decoding_llm, inputs, GenerationConfig(max_new_tokens=4, stop_at_answer=False))
    for out in outputs:
        assert out.truncated == (len(out.token_ids) == 4 and out.token_ids[-1] not in decoding_llm.eos_token_ids)
    assert any(out.truncated for out in outputs)


def test_int8_twin_shares_everything_but_the_linear_layers(decoding_llm):
    twin = int8_twin(decoding_llm.model)
    assert twin.get_input_embeddings().weight is decoding_llm.model.get_input_embeddings().weight
    assert isinstance(twin.lm_head, Int8Linear)
    assert isinstance(twin.model.layers[0].mlp.down_proj, Int8Linear)
    assert isinstance(decoding_llm.model.lm_head, torch.nn.Linear)  # the float model is untouched


def test_an_int8_layer_computes_what_the_float_layer_does_within_rounding():
    torch.manual_seed(0)
    linear = torch.nn.Linear(896, 1024)
    x = torch.randn(8, 896)
    exact = linear(x)
    error = (Int8Linear(linear)(x) - exact).norm() / exact.norm()
    assert error < 0.03  # int8 weights per output channel, int8 activations per call: about 1.5% at this width


@pytest.mark.plugins  # runs the shipped producers
def test_an_int8_run_decodes_with_the_twin_and_reads_prompts_in_float(tiny_dirs):
    llm_dir, assistant_dir = tiny_dirs
    config = load_config(
        overrides={
            "models": {"llm": llm_dir, "assistant": assistant_dir, "quantize": "int8"},
            "producer": {"name": "cot"},
            "generation": {"max_new_tokens": 6},
        }
    )
    pipeline = prepare(config).pipeline
    llm = pipeline.runtime.llm
    assert llm.stepper is llm.int8 and isinstance(llm.int8.lm_head, Int8Linear)
    calls = {"float": 0, "int8": 0}
    llm.model.model.register_forward_hook(lambda *a: calls.__setitem__("float", calls["float"] + 1))
    llm.int8.model.register_forward_hook(lambda *a: calls.__setitem__("int8", calls["int8"] + 1))
    predictions = pipeline.answer(pipeline.task.load(limit=2))
    assert len(predictions) == 2
    assert calls["float"] == 1 and calls["int8"] >= 5  # one prompt batch, then the decoding steps


@pytest.mark.plugins  # runs the shipped producers
def test_int8_is_refused_where_it_cannot_run():
    assert check_int8("cpu", "float32") == []
    problems = check_int8("cuda:0", "bfloat16")
    assert any("CPU only" in p for p in problems) and any("float32" in p for p in problems)
    config = load_config(overrides={"models": {"quantize": "int8", "dtype": "bfloat16"}, "producer": {"name": "cot"}})
    with pytest.raises(ConfigError, match="models.quantize: int8 needs float32"):
        resolve(config, Registry())


def test_auto_dtype_follows_the_hardware():
    assert resolve_dtype("auto", "cpu", {"avx2", "fma"})[0] == "float32"
    assert resolve_dtype("auto", "cpu", {"avx2", "avx512_bf16"})[0] == "bfloat16"
    assert resolve_dtype("auto", "cpu", {"amx_bf16"})[0] == "bfloat16"
    assert resolve_dtype("auto", "cuda:0", set())[0] == "bfloat16"
    assert resolve_dtype("float16", "cpu", set()) == ("float16", "as configured")


def test_bf16_asked_for_on_a_cpu_without_it_warns_with_its_measured_cost():
    assert resolve_dtype("auto", "cpu", {"avx2", "fma", "avx512f"})[0] == "float32"  # auto never picks it there
    warning = dtype_warning("bfloat16", "cpu", {"avx2", "fma"})
    assert warning is not None and "\n" not in warning
    slower = float(re.search(r"bf16 is ~([0-9.]+)x slower than float32 on this CPU", warning).group(1))
    assert slower > 0 and "no amx_bf16 or avx512_bf16" in warning
    assert dtype_warning("bfloat16", "cpu", {"avx2", "amx_bf16"}) is None
    assert dtype_warning("float32", "cpu", {"avx2"}) is None
    assert dtype_warning("bfloat16", "cuda:0", set()) is None


def test_the_machine_label_names_the_cpu_and_its_bf16(tmp_path):
    amd = tmp_path / "amd"
    amd.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx2 fma\n")
    intel = tmp_path / "intel"
    intel.write_text("model name\t: Intel(R) Xeon(R) Processor\nflags\t\t: avx2 avx512_bf16 amx_bf16\n")
    threads, version = torch.get_num_threads(), torch.__version__
    assert machine_label("cpu", amd) == f"AMD EPYC 9B14 (no native bf16), {threads} threads, torch {version}"
    assert machine_label("cpu", intel).startswith("Intel(R) Xeon(R) Processor (amx_bf16, avx512_bf16), ")


@pytest.mark.plugins  # runs the shipped producers
def test_the_results_folder_records_the_dtype_the_run_used(runtime):
    config = load_config(overrides={"producer": {"name": "cot"}})
    assert config.models.dtype == "auto"
    plan = resolve(config, Registry())
    assert plan.config.models.dtype == resolve_dtype("auto", Runtime(config.models).device)[0]


def test_a_vllm_chain_is_cut_where_the_loop_would_stop(decoding_llm):
    from latentreason.components.answers import BOXED_PATTERN
    from latentreason.decoding.generate import AnswerComplete
    from latentreason.decoding.vllm_engine import cut_at_answer

    tokenizer = decoding_llm.tokenizer
    ids = tokenizer("So 3 + 4 = 7. The final answer is \\boxed{7}. Done, more text", add_special_tokens=False)[
        "input_ids"
    ]
    checker = AnswerComplete(tokenizer, __import__("re").compile(BOXED_PATTERN))
    cut = cut_at_answer(ids, checker)
    assert checker.finished([cut])[0] and not checker.finished([cut[:-1]])[0]
    assert "\\boxed{7}" in tokenizer.decode(cut) and "Done" not in tokenizer.decode(cut)
    assert cut_at_answer(ids, None) == ids


@pytest.mark.plugins  # runs the shipped producers
def test_vllm_starts_no_worker_when_nothing_is_left_to_answer(runtime, monkeypatch):
    import sys

    from latentreason.decoding import vllm_engine

    def no_worker(*args):
        raise AssertionError("a worker was started for no examples")

    monkeypatch.setenv("LATENTREASON_VLLM_PYTHON", sys.executable)
    monkeypatch.setattr(vllm_engine, "worker_for", no_worker)
    pipeline = prepare(_config(engine="vllm"), runtime=runtime).pipeline
    assert list(pipeline.chains([])) == []
    with pytest.raises(AssertionError, match="a worker was started"):
        list(pipeline.chains(pipeline.task.load(limit=1)))


def test_the_vllm_worker_imports_vllm_not_a_module_beside_it(tmp_path):
    import json
    import os
    import struct
    import subprocess
    import sys

    from latentreason.decoding.vllm_engine import WORKER

    # the worker runs as a script, so its folder would lead sys.path; a module there named like a package it
    # imports (as the engine module once was: decoding/vllm.py) would shadow it
    (tmp_path / "worker.py").write_text(WORKER.read_text())
    (tmp_path / "vllm.py").write_text("raise ImportError('the module beside the worker')\n")
    start = json.dumps({"op": "start", "model": "m", "dtype": "float32", "max_num_seqs": 1, "max_model_len": 8})
    request = struct.pack(">Q", len(start)) + start.encode()
    done = subprocess.run(
        [sys.executable, str(tmp_path / "worker.py"), str(os.getpid())],
        input=request,
        capture_output=True,
        timeout=120,
        check=False,
    )
    reply = json.loads(done.stdout[8:])
    assert not reply["ok"] and "the module beside the worker" not in reply["error"], reply


@pytest.mark.plugins  # runs the shipped producers
def test_the_vllm_engine_refuses_what_it_cannot_run(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTREASON_VLLM_PYTHON", str(tmp_path / "missing" / "python"))
    config = load_config(
        overrides={
            "producer": {"name": "cot"},
            "generation": {"engine": "vllm"},
            "decoder": {"name": "window"},
            "adapter": {"rank": 4},
        }
    )
    with pytest.raises(ConfigError) as caught:
        resolve(config, Registry())
    message = str(caught.value)
    assert "cannot run decoder 'window'" in message
    assert "adapter" not in message  # vLLM loads the LLM with the adapter merged (models/merged.py)
    assert "latentreason vllm-setup" in message and "is not a file" in message


def test_min_new_tokens_holds_back_the_end_of_turn_in_both_engines(decoding_llm):
    from latentreason.decoding.generate import generate

    inputs = PlaceholderInjector(PlaceholderOptions(), decoding_llm).build("Solve it.", QUESTIONS[:2])
    config = GenerationConfig(max_new_tokens=6, min_new_tokens=6, stop_at_answer=False)
    ours, reference = decode(decoding_llm, inputs, config), generate(decoding_llm, inputs, config)
    assert [len(o.token_ids) for o in ours] == [6, 6]
    assert [o.token_ids for o in ours] == [r.token_ids for r in reference]


@pytest.mark.plugins  # runs the shipped producers
def test_training_and_its_loss_refuse_int8(runtime):
    from latentreason.api import loss, train
    from latentreason.errors import LatentReasonError

    config = load_config(overrides={"producer": {"name": "softcot"}, "models": {"quantize": "int8"}})
    with pytest.raises(LatentReasonError, match="applies to decoding; training and its loss run the full-precision"):
        train(config, runtime=runtime, progress=False)
    with pytest.raises(LatentReasonError, match="applies to decoding; training and its loss run the full-precision"):
        loss(config, runtime=runtime)
