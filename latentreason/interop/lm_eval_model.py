"""Any latentreason method as an lm-evaluation-harness model, registered as ``"latentreason"``.

Importing this module registers the model with lm-eval (lm-eval 0.4.13 has
no entry-point discovery for models, so it must be imported where lm-eval
runs; ``latentreason lm-eval ...`` does it). Then::

    import lm_eval
    import latentreason.interop.lm_eval_model  # registers "latentreason"

    lm_eval.simple_evaluate(model="latentreason", model_args="producer=softcot,quantize=int8", tasks=[...])

Each request's context becomes the user turn of the method's LLM prompt
(the ``system`` argument is its system turn), with the method's thoughts
injected as in any run. ``generate_until`` writes with continuous batching
and stops at the request's ``until`` strings; ``loglikelihood`` scores a
continuation after the prompt with thoughts, in one teacher-forced LLM
forward pass per batch. See ``docs/lm-eval.md``.
"""

# ruff: noqa: E402  (the imports after require_lm_eval() need lm-eval)
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from latentreason.interop.lm_eval_extra import require_lm_eval

require_lm_eval()

# lm-eval's own models register (lazily) when lm_eval.models is imported, and only if the model registry is
# still empty when a model is looked up: imported before ours registers, so they stay findable next to it.
import lm_eval.models  # noqa: F401
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import simple_parse_args_string
from pydantic import ValidationError

from latentreason.api import prepare
from latentreason.assembly.pipeline import Pipeline
from latentreason.assembly.registry import Registry
from latentreason.assembly.resolve import Plan, load_checked
from latentreason.assembly.voting import majority_vote
from latentreason.components.example import Example
from latentreason.components.injector import IGNORE_INDEX
from latentreason.components.producer import ThoughtProducer
from latentreason.components.task import TaskSpec
from latentreason.config import GenerationConfig, RunConfig, format_validation_error
from latentreason.decoding.generate import Generated, Written
from latentreason.errors import ConfigError, LatentReasonError
from latentreason.evaluation.runner import method_name
from latentreason.hooks.specs import hookimpl
from latentreason.training.trainer import llm_states

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance

__all__ = ["TASK_NAME", "LatentReasonLM"]

log = logging.getLogger(__name__)

TASK_NAME = "lm-eval"
"""The latentreason task the model's runs use: questions come from lm-eval's requests, answers go back to it."""

_PLACEHOLDER_GOLD = "0"
"""lm-eval holds the gold answers; an example gets a number, so a number evaluator reads its chains' answers as numbers."""

_LM_EVAL_ARGS = ("batch_size", "device")
"""lm-eval's own model arguments the model takes where ``--model_args`` say nothing (its
``max_batch_size`` is for automatic batch sizes, which this model does not use)."""

_GEN_KWARGS = ("until", "max_gen_toks", "do_sample", "temperature", "top_p")
"""The generation settings of lm-eval requests the model follows; any other is refused."""


class _RequestTask:
    """A plugin object that registers the :data:`TASK_NAME` task: no data, ``system`` as its system turn."""

    def __init__(self, system: str, styles: dict[str, str] | None = None) -> None:
        self.spec = TaskSpec(
            name=TASK_NAME,
            description="Requests of lm-evaluation-harness: the context is the user turn.",
            answer_type="number",
            evaluator="number",
            instruction=system,
            instructions={"softcot": system} if styles is None else styles,
            eval_split="requests",
            train_split=None,
        )

    @hookimpl
    def latentreason_tasks(self) -> dict[str, TaskSpec]:
        """Register the task."""
        return {TASK_NAME: self.spec}


@dataclass(frozen=True)
class _Settings:
    """One group of generation requests: everything of their ``gen_kwargs`` the model follows."""

    until: tuple[str, ...]
    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float

    @classmethod
    def of(cls, gen_kwargs: dict[str, Any], default_max: int) -> _Settings:
        """The settings of a request's ``gen_kwargs`` (lm-eval's semantics: temperature 0 is greedy).

        Raises:
            LatentReasonError: a setting the model does not follow (``top_k``, ...).
        """
        unknown = sorted(set(gen_kwargs) - set(_GEN_KWARGS))
        if unknown:
            raise LatentReasonError(
                f"The latentreason model does not follow the generation setting(s) {', '.join(unknown)} of this "
                f"task; it follows {', '.join(_GEN_KWARGS)}. Remove them with --gen_kwargs or the task's YAML."
            )
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        temperature = float(gen_kwargs.get("temperature", 1.0))
        do_sample = bool(gen_kwargs.get("do_sample", False)) and temperature > 0
        return cls(
            until=tuple(s for s in until if s),
            max_new_tokens=int(gen_kwargs.get("max_gen_toks", default_max)),
            do_sample=do_sample,
            temperature=temperature if do_sample else 1.0,
            top_p=float(gen_kwargs.get("top_p", 1.0)),
        )

    def stop(self) -> re.Pattern[str] | None:
        """A pattern that matches any ``until`` string, or None when there is none."""
        return re.compile("|".join(re.escape(s) for s in self.until)) if self.until else None

    def cut(self, text: str) -> str:
        """``text`` up to its first ``until`` string (as lm-eval's own models cut)."""
        for s in self.until:
            text = text.split(s)[0]
        return text


def _question_only(plan: Plan) -> None:
    """Refuse, before any model loads, a producer that reads more than the question (lm-eval's requests carry only it).

    Raises:
        LatentReasonError: the producer reads the gold answer or the whole example.
    """
    if plan.producer.cls.produce_for is not ThoughtProducer.produce_for:
        raise LatentReasonError(
            f"producer {plan.producer.name!r} reads more than the question (e.g. the gold answer, for a control), "
            "and lm-eval's requests carry only the question; evaluate it with `latentreason run` or `compare`."
        )


@register_model("latentreason")
class LatentReasonLM(LM):
    """A latentreason method (producer, projector, decoder, models) answering lm-eval's requests.

    The models load once, when the model is built. Every argument comes as
    text from ``--model_args`` (lm-eval converts numbers and booleans);
    None keeps the value of ``config`` (or of the defaults).

    Args:
        producer: the thought producer (default softcot).
        checkpoint: trained weights (.safetensors) for the method's trainable parts;
            several files separated by ``;``.
        llm: the reasoning LLM (alias, folder, .gguf or hub id).
        assistant: the assistant model.
        decoder: a decoding controller (e.g. compress); generate_until only.
        dtype: auto, float32, bfloat16 or float16.
        quantize: none or int8 (decoding steps in int8, CPU).
        batch_size: chains decoded at once, and sequences per log-likelihood
            forward pass; ``auto`` keeps the config's.
        prompt_style: default or softcot.
        n_thoughts: the producer's ``n_thoughts`` option.
        system: the LLM's system turn (default: none, so the chat template's own).
        instruction: a latentreason task (e.g. ``gsm8k``) whose system prompt, in the
            prompt style, is the LLM's system turn (``system`` cannot hold the commas
            of a prompt: lm-eval splits ``--model_args`` at them).
        config: a YAML run config (any latentreason setting) the other arguments override.
        device: where the models run (also lm-eval's ``--device``).
    """

    def __init__(
        self,
        producer: str | None = None,
        checkpoint: str | None = None,
        llm: str | None = None,
        assistant: str | None = None,
        decoder: str | None = None,
        dtype: str | None = None,
        quantize: str | None = None,
        batch_size: int | str | None = None,
        prompt_style: str | None = None,
        n_thoughts: int | None = None,
        system: str = "",
        instruction: str | None = None,
        config: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        overrides: dict[str, Any] = {"data": {"task": TASK_NAME}}
        for path, value in (
            (("producer", "name"), producer),
            (("producer", "options", "n_thoughts"), n_thoughts),
            (("checkpoint",), checkpoint.split(";") if checkpoint else None),
            (("decoder", "name"), decoder),
            (("models", "llm"), llm),
            (("models", "assistant"), assistant),
            (("models", "dtype"), dtype),
            (("models", "quantize"), quantize),
            (("models", "device"), device),
            (("generation", "batch_size"), batch_size if isinstance(batch_size, int) else None),
            (("prompt_style",), prompt_style),
        ):
            if value is not None:
                node = overrides
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = value
        registry = Registry(plugins=[self._request_task(str(system or ""), instruction)])
        # lm-eval brings the requests: the run reads no data; its notes (untrained parts, ...) go to lm-eval's log
        prepared = prepare(load_checked(config, overrides, registry), registry, data=_question_only, log=log.warning)
        self.pipeline: Pipeline = prepared.pipeline
        self.config: RunConfig = self.pipeline.config
        self.method = method_name(self.config)
        self._device = self.pipeline.runtime.device

    @staticmethod
    def _request_task(system: str, instruction: str | None) -> _RequestTask:
        """The task of the requests, with ``system`` or the system prompts of the task named by ``instruction``.

        Raises:
            ConfigError: both are given.
            LatentReasonError: no task has that name (the message lists them).
        """
        if instruction is None:
            return _RequestTask(system)
        if system:
            raise ConfigError(["give system=... or instruction=TASK, not both"], source="lm-eval's --model_args")
        named: TaskSpec = Registry().get("task", instruction)
        return _RequestTask(named.instruction, dict(named.instructions))

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict[str, Any] | None = None) -> LatentReasonLM:
        """Build from ``--model_args``; lm-eval's own ``--batch_size`` and ``--device`` apply where they say nothing.

        (lm-eval passes both; its base class would fail on a ``batch_size`` given twice.)
        """
        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    @classmethod
    def create_from_arg_obj(
        cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None
    ) -> LatentReasonLM:
        """Build from a dict of model arguments; lm-eval's ``batch_size`` and ``device`` fill what they leave out.

        lm-eval's device is ignored (with a warning) when it names CUDA and there is none: its ``--device``
        defaults to CUDA.
        """
        given = additional_config or {}
        extra = {k: given[k] for k in _LM_EVAL_ARGS if given.get(k) is not None and k not in arg_dict}
        if str(extra.get("device", "")).startswith("cuda") and not torch.cuda.is_available():
            # lm-eval's --device defaults to CUDA; without one the models go where models.device says
            log.warning("lm-eval's device %r is not available; the models run on models.device.", extra.pop("device"))
        return cls(**arg_dict, **extra)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """No template of lm-eval's: each context already becomes the user turn of the LLM's own chat template.

        Raises:
            LatentReasonError: lm-eval was asked to apply a chat template (``--apply_chat_template``).
        """
        if chat_template:
            raise LatentReasonError(
                "The latentreason model puts each context into its LLM's chat template itself (as the user turn, "
                "with model_args system=... as the system turn); run lm-eval without --apply_chat_template."
            )
        return ""

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Write a continuation of each request's context until one of its ``until`` strings.

        Requests are grouped by their generation settings; each group is
        written with continuous batching. A method that writes several
        chains per question (K thought sets, or ``generation.samples``)
        answers with the chain whose answer wins its majority vote (the
        config's evaluator reads the answers; default: numbers).

        Args:
            requests: ``args = (context, gen_kwargs)`` each.
            disable_tqdm: no progress bar.

        Returns:
            The continuations, in request order, each cut before its first ``until`` string.
        """
        default_max = self.config.generation.max_new_tokens
        groups: dict[_Settings, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(_Settings.of(dict(request.args[1]), default_max), []).append(i)
        out = [""] * len(requests)
        bar = tqdm(total=len(requests), desc="latentreason generate_until", disable=disable_tqdm)
        try:
            for settings, indices in groups.items():
                self.pipeline.config = self.config.model_copy(update={"generation": self._generation(settings)})
                examples = [Example(id=str(i), question=requests[i].args[0], answer=_PLACEHOLDER_GOLD) for i in indices]
                for written in self.pipeline.chains(examples, stop=settings.stop()):
                    i = int(written.example.id)
                    out[i] = settings.cut(self._chosen(written).text)
                    self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
                    bar.update()
        finally:
            self.pipeline.config = self.config
            bar.close()
        return out

    def _generation(self, settings: _Settings) -> GenerationConfig:
        """The config's generation settings with a request group's; checked as a whole.

        Without ``until`` strings, a chain ends at end of turn or the token cap
        (not at the evaluator's complete answer, which lm-eval knows nothing of).

        Raises:
            ConfigError: the combination is invalid (e.g. ``samples > 1`` with greedy decoding).
        """
        values = self.config.generation.model_dump() | {
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": settings.do_sample,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "stop_at_answer": bool(settings.until),
        }
        try:
            return GenerationConfig.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, "generation"),
                source=f"the generation settings of lm-eval's requests for {self.method}",
            ) from None

    def _chosen(self, written: Written) -> Generated:
        """An example's chain: its only one, or the first whose answer wins the vote over all of them."""
        if len(written.chains) == 1:
            return written.chains[0]
        scores = [self.pipeline.evaluator.score(c.text, written.example) for c in written.chains]
        voted = majority_vote(scores).flexible
        return next((c for c, s in zip(written.chains, scores) if s.flexible == voted), written.chains[0])

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """log P(continuation | the method's prompt for the context, with its thoughts), and whether it is greedy.

        The continuation's tokens follow the prompt (after the assistant
        header, where the LLM would start writing); each batch is one
        teacher-forced forward pass of the LLM.

        Args:
            requests: ``args = (context, continuation)`` each.
            disable_tqdm: no progress bar.

        Returns:
            ``(sum of the continuation tokens' log-probabilities, every token is the argmax)``, in request order.

        Raises:
            LatentReasonError: the method has a decoder or several thought sets per question.
        """
        if self.config.decoder is not None:
            raise LatentReasonError(
                f"lm-eval's loglikelihood tasks cannot run {self.method}: its decoder {self.config.decoder.name!r} "
                "rewrites the KV cache while the LLM writes, so a continuation has no log-probability under the "
                "method as one forward pass over fixed inputs. Run it on generate_until tasks, or drop the decoder."
            )
        tokenizer = self.pipeline.runtime.llm.tokenizer
        contexts = [request.args[0] for request in requests]
        targets = [tokenizer(request.args[1], add_special_tokens=False)["input_ids"] for request in requests]
        order = sorted(range(len(requests)), key=lambda i: -(len(contexts[i]) + len(targets[i])))  # little padding
        size = self.config.generation.batch_size
        out: list[tuple[float, bool]] = [(0.0, True)] * len(requests)
        for start in tqdm(range(0, len(order), size), desc="latentreason loglikelihood", disable=disable_tqdm):
            batch = order[start : start + size]
            examples = [Example(id=str(i), question=contexts[i], answer=_PLACEHOLDER_GOLD) for i in batch]
            for i, result in zip(batch, self._score(examples, [targets[i] for i in batch])):
                out[i] = result
                self.cache_hook.add_partial("loglikelihood", requests[i].args, result)
        return out

    def _score(self, examples: list[Example], targets: list[list[int]]) -> list[tuple[float, bool]]:
        """Log-probabilities of ``targets`` after each example's prompt with thoughts, in one forward pass."""
        llm = self.pipeline.runtime.llm
        with torch.no_grad():
            inputs = self.pipeline.inputs(examples, targets, training=False)
            if inputs.group != 1:
                raise LatentReasonError(
                    f"lm-eval's loglikelihood tasks cannot run {self.method}: producer {self.config.producer.name!r} "
                    f"gives {inputs.group} thought sets per question, so a continuation has {inputs.group} "
                    "log-probabilities (one per set) where lm-eval expects one. Run it on generate_until tasks, "
                    "where its chains are voted."
                )
            assert inputs.labels is not None  # built with targets
            (hidden,) = llm_states(self.pipeline, inputs)  # (B, T, d_llm)
            labels = inputs.labels[:, 1:].to(hidden.device)  # (B, T-1): token t is predicted at position t-1
            supervised = labels != IGNORE_INDEX  # (B, T-1)
            logits = llm.model.lm_head(hidden[:, :-1][supervised]).float()  # (M, V), row-major over the batch
            cap = getattr(llm.model.config, "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            wanted = labels[supervised]  # (M,)
            token_logprobs = logits.log_softmax(-1).gather(-1, wanted[:, None])[:, 0]  # (M,)
            missed = (logits.argmax(-1) != wanted).float()  # (M,)
            rows = supervised.nonzero()[:, 0]  # (M,) the batch row of each supervised position
            sums = torch.zeros(len(examples), device=logits.device).index_add_(0, rows, token_logprobs)  # (B,)
            misses = torch.zeros(len(examples), device=logits.device).index_add_(0, rows, missed)  # (B,)
        return [(float(s), bool(m == 0)) for s, m in zip(sums.tolist(), misses.tolist())]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Refused: perplexity of whole documents has no question for a method to think about.

        Raises:
            LatentReasonError: always.
        """
        raise LatentReasonError(
            f"lm-eval's loglikelihood_rolling (perplexity) tasks cannot run {self.method}: a latentreason method "
            "conditions its LLM on thoughts about a question, and a rolling document has none. Use lm-eval's own "
            "hf model for perplexity tasks, and the latentreason model for generate_until (or loglikelihood) tasks."
        )
