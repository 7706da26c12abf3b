"""lm-evaluation-harness on tiny models: the model "latentreason", its CLI, the scorers' cross-check, the export."""

# ruff: noqa: E402  (the imports after importorskip need lm-eval)
from __future__ import annotations

import importlib
import json
import re
import sys
from functools import partialmethod

import datasets
import pytest
import torch
from click.testing import CliRunner

from latentreason.assembly.prepare import prepare

lm_eval = pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance
from lm_eval.api.metrics import mean_stderr
from lm_eval.tasks import TaskManager
from lm_eval.utils import (
    get_file_task_name,
    get_results_filenames,
    get_sample_results_filenames,
    make_table,
)

from latentreason.api import run
from latentreason.builtins.tasks.arithmetic import GSM8K
from latentreason.cli import main
from latentreason.components.example import Example
from latentreason.config import load_config
from latentreason.errors import LatentReasonError
from latentreason.interop.lm_eval_extra import INSTALL_HINT, MissingExtraError
from latentreason.interop.lm_eval_model import LatentReasonLM
from latentreason.interop.lm_eval_scoring import cross_check

QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips?",
    "Is it common to see frost during some college commencements?",
    "How many clips did Natalia sell altogether in April and May?",
]
MAX_TOKENS = 6


def _rows(**metadata) -> datasets.DatasetDict:
    """The local task's data (lm-eval passes the task's metadata, ignored here)."""
    rows = [{"question": q, "answer": "72"} for q in QUESTIONS]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


TASK = {
    "task": "tiny_latentreason",
    "custom_dataset": _rows,
    "output_type": "generate_until",
    "test_split": "test",
    "doc_to_text": "{{question}}",
    "doc_to_target": "{{answer}}",
    "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    "generation_kwargs": {"until": ["Q:"], "max_gen_toks": MAX_TOKENS, "do_sample": False},
    "metadata": {"version": 1.0},
}


def _args(tiny_dirs, **extra) -> dict:
    llm, assistant = tiny_dirs
    # float32: ``auto`` would be bfloat16 on a CPU with native bf16, whose rounding the exact checks below do not allow
    args = {"producer": "softcot", "llm": llm, "assistant": assistant, "device": "cpu", "dtype": "float32"}
    return args | {"batch_size": 2} | extra


@pytest.fixture(scope="module")
def lm(tiny_dirs) -> LatentReasonLM:
    """The model on the tiny pair, built as lm-eval builds it (its own batch_size and device given too)."""
    return LatentReasonLM.create_from_arg_obj(_args(tiny_dirs), {"batch_size": 1, "device": None})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without CUDA")
def test_lm_evals_default_cuda_device_falls_back_without_cuda(tiny_dirs):
    args = {k: v for k, v in _args(tiny_dirs).items() if k != "device"}
    model = LatentReasonLM.create_from_arg_obj(args, {"batch_size": 1, "device": "cuda:0"})
    assert model.pipeline.runtime.device == "cpu"


def _generate(model: LatentReasonLM, *requests: tuple[str, dict]) -> list[str]:
    instances = [Instance("generate_until", {}, request, i) for i, request in enumerate(requests)]
    return model.generate_until(instances, disable_tqdm=True)


@pytest.fixture(scope="module")
def evaluated(tiny_dirs) -> dict:
    """``simple_evaluate`` of the model "latentreason" (by name, with model args) on the local task."""
    return lm_eval.simple_evaluate(
        model="latentreason",
        model_args=_args(tiny_dirs, system=GSM8K.instruction),
        tasks=[TASK],
        task_manager=TaskManager(include_defaults=False),  # no need to index lm-eval's own tasks
        bootstrap_iters=0,
        log_samples=True,
    )


def test_simple_evaluate_runs_a_local_task_end_to_end(evaluated):
    metrics = evaluated["results"]["tiny_latentreason"]
    assert 0.0 <= metrics["exact_match,none"] <= 1.0
    assert evaluated["n-samples"]["tiny_latentreason"]["effective"] == len(QUESTIONS)
    assert all(s["resps"][0][0] for s in evaluated["samples"]["tiny_latentreason"])


def test_lm_eval_gets_the_generations_of_the_projects_own_pipeline(evaluated, tiny_dirs, tmp_path):
    theirs = {s["doc"]["question"]: s["resps"][0][0] for s in evaluated["samples"]["tiny_latentreason"]}
    source = tmp_path / "questions.jsonl"
    source.write_text(
        "".join(json.dumps({"id": str(i), "question": q, "answer": "72"}) + "\n" for i, q in enumerate(QUESTIONS))
    )
    llm, assistant = tiny_dirs
    config = load_config(
        overrides={
            "producer": {"name": "softcot"},
            "models": {"llm": llm, "assistant": assistant, "device": "cpu", "dtype": "float32"},
            "data": {"task": "gsm8k", "source": str(source)},
            "generation": {"max_new_tokens": MAX_TOKENS, "batch_size": 2},
        }
    )
    torch.manual_seed(config.seed)  # the untrained projector gets the weights the model's got
    pipeline = prepare(config).pipeline
    written = pipeline.chains(pipeline.plan.examples(), stop=re.compile("Q:"))
    assert {w.example.question: w.chains[0].text.split("Q:")[0] for w in written} == theirs


def test_generate_until_follows_each_requests_settings(lm):
    context = QUESTIONS[0]
    [whole] = _generate(lm, (context, {"until": [], "max_gen_toks": MAX_TOKENS}))
    assert len(whole) >= 4, whole
    stop = whole[len(whole) // 2 : len(whole) // 2 + 2]
    again, cut, short = _generate(
        lm,
        (context, {"until": [], "max_gen_toks": MAX_TOKENS}),
        (context, {"until": [stop, "never there"], "max_gen_toks": MAX_TOKENS}),
        (context, {"until": "never there", "max_gen_toks": 2, "temperature": 0.0}),
    )
    assert again == whole
    assert cut == whole.split(stop)[0]
    assert whole.startswith(short) and len(short) < len(whole)
    with pytest.raises(LatentReasonError, match="top_k"):
        _generate(lm, (context, {"until": [], "top_k": 5}))


def test_loglikelihood_equals_a_direct_computation(lm):
    pairs = [(QUESTIONS[0], " 72 clips"), (QUESTIONS[1], "Yes."), (QUESTIONS[2], " 48 + 24 = 72")]
    got = lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)], disable_tqdm=True)
    pipeline, llm = lm.pipeline, lm.pipeline.runtime.llm
    for (context, continuation), (logprob, greedy) in zip(pairs, got):
        ids = llm.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            prompt = pipeline.inputs([Example("x", context, "0")], training=False)  # one row, no padding
            embeds = torch.cat([prompt.inputs_embeds, llm.embed(torch.tensor([ids]))], dim=1)  # (1, T + C, d)
            logits = llm.model(inputs_embeds=embeds).logits[0, -len(ids) - 1 : -1].float()  # (C, V)
        expected = logits.log_softmax(-1)[torch.arange(len(ids)), ids].sum().item()
        assert logprob == pytest.approx(expected, abs=1e-4)
        assert greedy == (logits.argmax(-1).tolist() == ids)


def test_loglikelihood_refuses_methods_it_cannot_score(tiny_dirs, lm):
    with_decoder = LatentReasonLM(**_args(tiny_dirs, producer="cot", decoder="compress"))
    request = [Instance("loglikelihood", {}, (QUESTIONS[0], " 72"), 0)]
    with pytest.raises(LatentReasonError, match=r"cot\+compress: its decoder 'compress' rewrites the KV cache"):
        with_decoder.loglikelihood(request)
    several_sets = LatentReasonLM(**_args(tiny_dirs, producer="softcotpp"))
    with pytest.raises(LatentReasonError, match=r"softcotpp.*4 thought sets per question"):
        several_sets.loglikelihood(request)
    with pytest.raises(LatentReasonError, match="loglikelihood_rolling"):
        lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("text",), 0)])


def test_a_producer_that_reads_the_gold_is_refused_before_any_model_loads(tiny_dirs, monkeypatch):
    monkeypatch.setattr("latentreason.assembly.prepare.build", lambda *a, **k: pytest.fail("models loaded"))
    with pytest.raises(LatentReasonError, match="'softcot-oracle' reads more than the question"):
        LatentReasonLM(**_args(tiny_dirs, producer="softcot-oracle"))


def test_the_cli_runs_the_shipped_task_with_model_args_and_lm_evals_batch_size(tiny_dirs, tmp_path, monkeypatch):
    # lm-eval's CLI indexes its thousands of own task files (15 s on 2 cores); the shipped tasks are enough here
    monkeypatch.setattr(TaskManager, "__init__", partialmethod(TaskManager.__init__, include_defaults=False))
    llm, assistant = tiny_dirs
    result = CliRunner().invoke(
        main,
        [
            "lm-eval",
            "--model",
            "latentreason",
            "--model_args",
            f"producer=cot,llm={llm},assistant={assistant},device=cpu,batch_size=2",
            "--tasks",
            "gsm8k_latentreason",
            "--limit",
            "2",
            "--gen_kwargs",
            "max_gen_toks=4",
            "--output_path",
            str(tmp_path),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "gsm8k_latentreason" in result.output and "flexible-extract" in result.output
    [results] = tmp_path.glob("*/results_*.json")
    assert json.loads(results.read_text())["n-samples"]["gsm8k_latentreason"]["effective"] == 2


def test_cross_check_names_each_kind_of_disagreement():
    records = [
        {"id": "box", "generation": "So 9 * 2 = 18.\nThe final answer is \\boxed{18}.", "gold": "18"},
        {"id": "decimals", "generation": "Each pays $102.00 / 3 = $34.00", "gold": "34"},
        {"id": "fraction", "generation": "She needs \\frac{1}{3} of it", "gold": "3"},
        {"id": "sentence", "generation": "9 * 2 = 18. The answer is 18.", "gold": "18"},
    ]
    ours = {"box": "18", "decimals": "34", "fraction": "0.3333333333333333", "sentence": "18"}
    for r in records:
        r.update(strict="18" if r["id"] == "box" else None, flexible=ours[r["id"]])
        r.update(strict_correct=r["strict"] == r["gold"], flexible_correct=r["flexible"] == r["gold"])
    check = cross_check(records)
    strict, flexible = check.agreements
    assert (strict.filter, strict.n, strict.ours_correct, strict.lm_eval_correct) == ("strict-match", 4, 1, 1)
    assert (flexible.ours_correct, flexible.lm_eval_correct, flexible.same_verdict) == (3, 3, 2)
    found = {(d.id, d.filter): (d.kind, d.right) for d in check.disagreements}
    assert found[("box", "strict-match")] == (
        "no 'The answer is N.' sentence: the chain ends with \\boxed{N}, as this project's prompt asks",
        "latentreason",
    )
    assert found[("sentence", "strict-match")][1] == "lm-eval"
    assert found[("decimals", "flexible-extract")][1] == "latentreason"
    assert found[("decimals", "flexible-extract")][0].startswith("same number, other text")
    assert found[("fraction", "flexible-extract")] == (
        "a fraction: lm-eval reads its denominator, latentreason its value",
        "lm-eval",
    )
    assert "| flexible-extract | flexible | 4 | 0.750 (3/4) | 0.750 (3/4) | 0.500 (2/4) |" in check.markdown()


def test_the_export_writes_lm_evals_layout(tiny_dirs, tmp_path):
    llm, assistant = tiny_dirs
    folder = tmp_path / "run"
    config = load_config(
        overrides={
            "producer": {"name": "cot"},
            "models": {"llm": llm, "assistant": assistant, "device": "cpu"},
            "data": {"task": "gsm8k", "limit": 3},
            "generation": {"max_new_tokens": 4},
        }
    )
    run(config, output=folder, progress=False)
    result = CliRunner().invoke(main, ["report", str(folder), "--format", "lm-eval"], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    names = [str(p.relative_to(tmp_path)) for p in (folder / "lm-eval").rglob("*")]
    [results_name] = get_results_filenames(names)
    [samples_name] = get_sample_results_filenames(names)
    assert get_file_task_name(samples_name.rpartition("/")[2]) == "gsm8k"
    aggregated = json.loads((tmp_path / results_name).read_text())
    assert aggregated["model_name_sanitized"] == "latentreason__cot__seed0"
    assert "producer=cot" in aggregated["config"]["model_args"]
    assert "gsm8k" in make_table(aggregated)

    records = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    lines = [json.loads(line) for line in (tmp_path / samples_name).read_text().splitlines()]
    assert [(s["doc_id"], s["filter"]) for s in lines] == [
        (i, f) for i in range(3) for f in ("strict-match", "flexible-extract")
    ]
    for s in lines:
        record = records[s["doc_id"]]
        ours = "strict" if s["filter"] == "strict-match" else "flexible"
        assert s["resps"] == [[record["generation"]]] and s["target"] == record["gold"]
        assert s["filtered_resps"] == [record[ours] or "[invalid]"]
        assert s["exact_match"] == float(record[f"{ours}_correct"])
        assert s["arguments"]["gen_args_0"]["arg_0"] == record["prompt"]
    metrics = aggregated["results"]["gsm8k"]
    flexible = [float(r["flexible_correct"]) for r in records]
    assert metrics["exact_match,flexible-extract"] == pytest.approx(sum(flexible) / 3)
    assert metrics["exact_match_stderr,flexible-extract"] == pytest.approx(mean_stderr(flexible))


def test_a_missing_lm_eval_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # `import lm_eval` now fails
    for name in ("latentreason.interop.lm_eval_model", "latentreason.interop.lm_eval_scoring"):
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtraError, match=re.escape(INSTALL_HINT)) as caught:
        importlib.import_module("latentreason.interop.lm_eval_model")
    assert isinstance(caught.value, ImportError)
    for command in (["lm-eval", "--tasks", "gsm8k_latentreason"], ["lm-eval-check", "."]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert INSTALL_HINT in result.output and "Traceback" not in result.output


def test_instruction_names_a_task_whose_system_prompt_the_llm_gets(tiny_dirs):
    request_task = LatentReasonLM._request_task("", "gsm8k").spec
    assert (request_task.instruction, request_task.instructions) == (GSM8K.instruction, GSM8K.instructions)
    with pytest.raises(LatentReasonError, match="system=... or instruction=TASK, not both"):
        LatentReasonLM(**_args(tiny_dirs, system="Be brief.", instruction="gsm8k"))
    with pytest.raises(LatentReasonError, match="gsm8k"):  # the unknown name's message lists the tasks
        LatentReasonLM._request_task("", "gsm9k")
