"""The data path of every method, in one place:

    question -> producer -> projector -> injector -> generate -> evaluator

:class:`Pipeline` wires the components a :class:`RunConfig` names. The trainer
uses the same :meth:`Pipeline.inputs` with gold targets appended. A run with a
decoding controller (``decoder``) decodes with :func:`latentreason.decoding.loop.decode`,
which lets the controller rewrite the KV cache as the LLM writes.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentreason.assembly.latent_prefix import LatentPrefix, continue_into, latent_prefix
from latentreason.assembly.resolve import Plan
from latentreason.assembly.voting import majority_vote
from latentreason.components.evaluator import Score
from latentreason.components.example import Example
from latentreason.components.injector import LLMInputs
from latentreason.components.producer import Thoughts
from latentreason.components.shapes import check_shape
from latentreason.decoding.generate import Generated, Written, generate
from latentreason.decoding.loop import decode, decode_stream
from latentreason.decoding.state import supports_rewriting
from latentreason.decoding.vllm_engine import vllm_chains
from latentreason.errors import LatentReasonError
from latentreason.hooks.contract import blame
from latentreason.models.runtime import Runtime
from latentreason.storage import foreign_adapter, load_weights, read_meta, stored_components


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's generators seeded with ``seed`` inside the block, their earlier state restored after it."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


@dataclass
class Prediction:
    """One answered example.

    Attributes:
        example: the example.
        prompt: the LLM prompt as text (placeholders shown as tokens).
        generations: the chain(s) the LLM wrote (several with self-consistency).
        new_tokens: tokens generated for this example, all chains together.
        score: the (voted) score.
        latency_s: wall time attributed to it (see :meth:`Pipeline.stream`).
        peak_kv: most KV-cache entries any of its chains could attend to.
        dependency: KV entries attended to, summed over generated tokens and chains.
        truncated: how many of its chains were cut by ``max_new_tokens``.
        soft_steps: per chain, the indices of its soft steps (generated tokens
            whose input a decoding controller chose; see ``Generated.soft_steps``).
    """

    example: Example
    prompt: str
    generations: list[str]
    new_tokens: int
    score: Score
    latency_s: float
    peak_kv: int = 0
    dependency: int = 0
    truncated: int = 0
    soft_steps: list[list[int]] = field(default_factory=list)


class Pipeline:
    """A runnable method: producer, projector, injector and evaluator on one task.

    Args:
        plan: resolved components (see :func:`latentreason.assembly.resolve.resolve`).
        runtime: the models.
        default_weights: load the producer's default checkpoint (e.g. a shipped
            projector) for trainable parts that ``config.checkpoint`` leaves
            out. Training passes False, so that it starts from its seeded
            initialization unless a checkpoint is named.
    """

    def __init__(self, plan: Plan, runtime: Runtime, *, default_weights: bool = True) -> None:
        self.plan = plan
        self.config = plan.config
        self.task = plan.task
        self.runtime = runtime
        with seeded(self.config.seed):  # trainable parts start from the seed alone, whatever the process drew before
            with self._blame("producer"):
                self.producer = plan.producer.cls(plan.producer.options, runtime)
            self.fitted = self._stored_fit()  # before any model loads
            with self._blame("injector"):
                self.injector = plan.injector.cls(plan.injector.options, runtime.llm)
            with self._blame("evaluator"):
                self.evaluator = plan.evaluator.cls(plan.evaluator.options)
            self.decoder = None
            if plan.decoder:
                with self._blame("decoder"):
                    self.decoder = plan.decoder.cls(plan.decoder.options, runtime)
            self.projector = None
            with self._blame("producer"):
                thought_dim = self.producer.thought_dim
            if thought_dim is not None:
                llm = runtime.llm
                with self._blame("projector"):
                    self.projector = plan.projector.cls(
                        plan.projector.options, thought_dim, llm.hidden_size, llm.embed_norm
                    ).to(llm.model.device)
            self.checkpoints, self.untrained = self._load_weights(default_weights)
        self.instruction = self.task.instruction_for(self.config.prompt_style)
        self._next_example: dict[str, Example] | None = None
        self._mean_thoughts: torch.Tensor | None = None

    def _blame(self, kind: str, instance: object | None = None) -> AbstractContextManager[None]:
        """:func:`~latentreason.hooks.contract.blame` for this run's component of ``kind``."""
        choice = getattr(self.plan, kind)
        return blame(kind, choice.name, choice.origin, instance)

    def trainable(self) -> dict[str, nn.Module]:
        """The components with trainable parameters, by checkpoint prefix (the LLM's adapter under ``adapter``)."""
        modules: dict[str, nn.Module] = {}
        if self.projector is not None and any(True for _ in self.projector.parameters()):
            modules["projector"] = self.projector
        for name, component in (("producer", self.producer), ("decoder", self.decoder)):
            module = component.trainable() if component is not None else None
            if module is not None:
                modules[name] = module
        if self.runtime.adapter is not None:
            modules["adapter"] = self.runtime.adapter
        return modules

    def components(self) -> dict[str, object]:
        """Names and options of the components, as stored in checkpoints (with the producer's fitted state's provenance)."""
        plan = self.plan
        adapter = self.config.adapter.model_dump(mode="json", exclude={"merge"}) if self.config.adapter else None
        fitted = {"fitted": self.fitted} if self.fitted else {}
        return {
            kind: {"name": choice.name, "options": choice.options.model_dump(mode="json")}
            | (fitted if kind == "producer" else {})
            for kind, choice in (("producer", plan.producer), ("projector", plan.projector))
        } | {
            "llm": self.runtime.model_name("llm"),
            "assistant": self.runtime.model_name("assistant"),
            "adapter": adapter,
        }

    def _stored_fit(self) -> dict[str, Any]:
        """The provenance of the producer's fitted state in ``config.checkpoint`` (empty: none there).

        Raises:
            LatentReasonError: a checkpoint's fitted state depends on other
                values than this producer's (another assistant, placeholder, layer, ...).
        """
        with self._blame("producer"):
            mine = self.producer.fitted_from()
        for path in self.config.checkpoints():
            stored = read_meta(path).get("components", {}).get("producer", {}).get("fitted")
            if not stored or not mine:
                continue
            differ = [
                f"{key}: {stored.get(key)!r} there, {value!r} here"
                for key, value in mine.items()
                if stored.get(key) != value
            ]
            if differ:
                raise LatentReasonError(
                    f"Checkpoint {path!r} holds producer state fitted for another setup ({'; '.join(differ)}); "
                    "statistics of other states would be applied to this run's. Use the run's settings the checkpoint "
                    "was trained with, or train for these with `latentreason train`."
                )
            return stored
        return {}

    def fit(self, examples: list[Example], log: Callable[[str], None] | None = None) -> None:
        """Fit the producer's data-dependent state on training ``examples`` (see :meth:`ThoughtProducer.fit`).

        Nothing happens when the producer fits nothing or a checkpoint gave
        its state. The provenance (what :meth:`ThoughtProducer.fitted_from`
        names, the number of questions and their ids) goes into every
        checkpoint saved from this pipeline.

        Args:
            examples: the training examples.
            log: told, before the fit starts, what is fitted on how many questions.
        """
        with self._blame("producer"):
            basis = self.producer.fitted_from()
        if not basis or "producer" not in self.untrained:
            return
        if log is not None:
            log(f"fitting {self.config.producer.name}'s statistics on {len(examples)} training questions ...")
        questions = [self.task.format_question(ex) for ex in examples]
        with self._blame("producer"):
            self.producer.fit(
                examples, questions, instruction=self.instruction, batch_size=self.config.generation.batch_size
            )
        ids = [ex.id for ex in examples]
        self.fitted = basis | {
            "task": self.task.name,
            "questions": len(ids),
            "rows": f"ids {ids[0]} .. {ids[-1]}",
            "ids sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        }

    def _fitting_default(self) -> Path | None:
        """The producer's default checkpoint, if it was made for this very setup."""
        path = self.producer.default_checkpoint()
        if path is None:
            return None
        made_for = read_meta(path).get("components", {})
        mine: dict[str, Any] = self.components()
        same = all(made_for.get(k) == mine[k] for k in ("projector", "llm", "assistant"))
        return path if same and made_for.get("producer", {}).get("name") == mine["producer"]["name"] else None

    def _load_weights(self, default_weights: bool) -> tuple[list[str], list[str]]:
        """Load ``config.checkpoint`` file(s), then (if ``default_weights``) the producer's default for what they leave out.

        Each file may hold some of the trainable components (e.g. a SoftCoT
        projector in one, a trained compressor in another).

        Returns:
            The files loaded, and the trainable components left untrained.
        """
        modules = self.trainable()
        adapter = self.runtime.adapter
        if adapter is not None:
            adapter.reset()  # a runtime shared with an earlier method must not keep that method's adapter
        if not modules:
            return [], []
        loaded = []
        for path in self.config.checkpoints():
            foreign = foreign_adapter(path, self.runtime.model_name("llm"))
            if foreign:
                raise LatentReasonError(foreign)
            names = stored_components(path)
            if not names <= set(modules):
                raise LatentReasonError(
                    f"Checkpoint {path!r} holds {', '.join(sorted(names - set(modules)))}, which this run does not "
                    f"train or which an earlier checkpoint already gave; still to load: {', '.join(sorted(modules)) or 'nothing'}."
                )
            load_weights(path, {name: modules.pop(name) for name in names})
            loaded.append(path)
        default = self._fitting_default() if default_weights else None
        names = stored_components(default) if default is not None else set()
        if default is not None and names and names <= set(modules):
            load_weights(default, {name: modules.pop(name) for name in names})
            loaded.append(str(default))
        if adapter is not None and self.config.adapter and self.config.adapter.merge and "adapter" not in modules:
            adapter.merge()  # a trained adapter, folded into the LLM's weights for evaluation
        return loaded, sorted(modules)

    def _next_examples(self, examples: list[Example]) -> list[Example]:
        """For ``thoughts_from: next``: the example after each one in its split (cyclically).

        The whole split is read once; an example not in it (another source)
        gets the one after the split's first example.
        """
        if self._next_example is None:
            data = self.config.data
            split = self.task.load(data.split, data.source)
            following = split[1:] + split[:1]
            self._next_example = {ex.id: nxt for ex, nxt in zip(split, following)}
        fallback = next(iter(self._next_example.values()))
        return [self._next_example.get(ex.id, fallback) for ex in examples]

    def mean_thoughts(self) -> torch.Tensor:
        """For ``thoughts_from: mean``: the mean LLM-input thoughts ``(K, N, d_llm)`` over the held-back training questions.

        Each question's own thoughts, projected as at evaluation, averaged
        over the questions of ``config.audit`` (see :meth:`Plan.held_back`)
        per thought set and slot; computed once.

        Raises:
            LatentReasonError: the producer makes no soft thoughts.
        """
        if self._mean_thoughts is None:
            rows = self.plan.held_back().examples
            total = torch.zeros(())
            step = self.config.generation.batch_size
            with torch.no_grad():
                for start in range(0, len(rows), step):
                    batch = rows[start : start + step]
                    questions = [self.task.format_question(ex) for ex in batch]
                    with self._blame("producer"):
                        thoughts = self.producer.produce_for(batch, questions, instruction=self.instruction)
                        self._check_thoughts(thoughts, len(batch))
                    vectors, _ = self._llm_vectors(thoughts, questions)  # (B*K, N, d_llm) or None
                    if vectors is None:
                        raise self._no_vectors()
                    total = total + vectors.reshape(len(batch), thoughts.sets, *vectors.shape[1:]).sum(0)  # (K, N, d)
            self._mean_thoughts = total / len(rows)
        return self._mean_thoughts

    def _projected(self, thoughts: Thoughts) -> torch.Tensor | None:
        """The projector's output ``(B*K, N, d_llm)`` for a producer's vectors ``(B*K, N, d_src)``, or None without them."""
        if thoughts.vectors is None or self.projector is None:
            return None
        with self._blame("projector"):
            vectors = self.projector(thoughts.vectors.to(self.runtime.llm.model.device))  # (B*K, N, d_llm)
            d_llm = self.runtime.llm.hidden_size
            check_shape(
                vectors,
                {"B*sets": thoughts.vectors.shape[0], "N": thoughts.count, "d_llm": d_llm},
                f"the output of projector {self.plan.projector.name!r} (LLM hidden size {d_llm})",
            )
        return vectors

    def _llm_vectors(
        self, thoughts: Thoughts, questions: list[str], continued: bool = False
    ) -> tuple[torch.Tensor | None, LatentPrefix | None]:
        """What the LLM receives in the thought slots ``(B*K, N, d_llm)`` (None without soft thoughts), and its latent prefix.

        A producer's vectors, projected (no prefix); or, for a latent prefix,
        the LLM's own states on ``questions`` (those the producer read, each
        repeated for its thought sets), each through the projector
        (:func:`~latentreason.assembly.latent_prefix.latent_prefix`).

        Args:
            thoughts: what the producer returned.
            questions: the questions it read.
            continued: a pass will continue the prefix (it keeps every layer's hidden states).
        """
        if not thoughts.latent_steps:
            return self._projected(thoughts), None
        questions = [q for q in questions for _ in range(thoughts.sets)]
        llm = self.runtime.llm
        assert self.projector is not None  # a latent prefix needs thought_dim, checked in _check_thoughts
        slots = torch.zeros(len(questions), thoughts.latent_steps, llm.hidden_size)  # (B*K, N, d_llm), not read
        with self._blame("injector"):
            prompts = self.injector.build(self.instruction, questions, slots, thoughts.hints)
        with self._blame("projector"):
            prefix = latent_prefix(llm, prompts, thoughts.latent_steps, self.projector, hidden_states=continued)
        return prefix.thoughts, prefix

    def _no_vectors(self) -> LatentReasonError:
        """The error of an ablation of soft thoughts on a producer that makes none."""
        return LatentReasonError(
            f"thoughts_from: {self.config.thoughts_from} replaces the soft thoughts the LLM receives, but producer "
            f"{self.plan.producer.name!r} makes none (text hints or nothing); use it with a producer that injects vectors."
        )

    def inputs(
        self, examples: list[Example], targets: list[list[int]] | None = None, *, training: bool | None = None
    ) -> LLMInputs:
        """The LLM input for a batch: produce, project, inject.

        A producer with K thought sets per question gets K consecutive rows
        per example (``inputs.group = K``), each with the example's targets.
        The ablations apply at evaluation only: with ``thoughts_from: next``
        the producer reads another example (see :meth:`_next_examples`);
        with ``zero`` the LLM receives zero vectors, with ``mean`` the mean
        thoughts of :meth:`mean_thoughts`, in place of the projected ones.

        Args:
            examples: the batch.
            targets: gold token ids to append and supervise, or None.
            training: the producer works as in training (default: when there are targets).
        """
        training = targets is not None if training is None else training
        questions = [self.task.format_question(ex) for ex in examples]
        read = self._next_examples(examples) if self.config.thoughts_from == "next" and not training else examples
        read_questions = [self.task.format_question(ex) for ex in read]
        with self._blame("producer"):
            thoughts = self.producer.produce_for(
                read, read_questions, instruction=self.instruction, training=training
            )  # (B*K, N, d_src), hints or a latent prefix
            self._check_thoughts(thoughts, len(read))
        k = thoughts.sets  # rows per question, consecutive
        questions = [q for q in questions for _ in range(k)]
        if targets is not None:
            targets = [t for t in targets for _ in range(k)]
        ablation = None if training else self.config.thoughts_from
        continued = targets is not None and ablation in (None, "own")  # a latent prefix computes these very rows
        vectors, prefix = self._llm_vectors(thoughts, read_questions, continued)  # (B*K, N, d_llm) or None
        if ablation in ("zero", "mean"):
            if vectors is None:
                raise self._no_vectors()
            # (B*K, N, d_llm); the mean's K sets repeat per example, as the rows are ordered
            vectors = (
                torch.zeros_like(vectors) if ablation == "zero" else self.mean_thoughts().repeat(len(examples), 1, 1)
            )
        with self._blame("injector"):
            inputs = self.injector.build(self.instruction, questions, vectors, thoughts.hints, targets)
            if prefix is not None and continued and targets is not None:  # (continued implies targets)
                inputs = continue_into(prefix, inputs, [len(t) for t in targets])
        inputs.group, inputs.loss = k, thoughts.loss
        return inputs

    def _check_thoughts(self, thoughts: Thoughts, questions: int) -> None:
        """Raise unless the producer's thoughts have one row per question and thought set, as wide as it says."""
        name = self.plan.producer.name
        if not isinstance(thoughts, Thoughts):
            raise LatentReasonError(f"produce() returned a {type(thoughts).__name__}, not Thoughts.")
        rows = questions * thoughts.sets
        if thoughts.latent_steps and (thoughts.vectors is not None or self.producer.thought_dim is None):
            raise LatentReasonError(
                "produce() asked for a latent prefix (latent_steps) and returned vectors, or has no thought_dim; "
                "a latent prefix's thoughts are the LLM's states: return no vectors and set thought_dim to the "
                "LLM's hidden size."
            )
        if thoughts.vectors is not None:
            width = self.producer.thought_dim
            if width is None:
                raise LatentReasonError(
                    "produce() returned vectors, but thought_dim is None, so no projector would take them; "
                    "give thought_dim the vectors' width."
                )
            check_shape(
                thoughts.vectors,
                {"B*sets": rows, "N": None, "d": width},
                f"the output of producer {name!r} (for {questions} question(s) x {thoughts.sets} thought set(s), "
                f"thought_dim {width})",
            )
        if thoughts.hints is not None and len(thoughts.hints) != rows:
            raise LatentReasonError(
                f"produce() returned {len(thoughts.hints)} hint(s) for {questions} question(s) x {thoughts.sets} "
                f"thought set(s); expected {rows}, one per row."
            )

    def prompts(self, examples: list[Example]) -> LLMInputs:
        """The LLM prompts of a batch, one row per chain: K thought sets x ``generation.samples``.

        Rows of one example are consecutive (``inputs.group`` = chains per example).
        """
        samples = self.config.generation.samples
        with torch.no_grad():
            inputs = self.inputs(examples)
        if samples > 1:
            inputs.inputs_embeds = inputs.inputs_embeds.repeat_interleave(samples, dim=0)  # (B*K*s, T, d_llm)
            inputs.attention_mask = inputs.attention_mask.repeat_interleave(samples, dim=0)  # (B*K*s, T)
            if inputs.thought_mask is not None:
                inputs.thought_mask = inputs.thought_mask.repeat_interleave(samples, dim=0)  # (B*K*s, T)
            inputs.prompts = [p for p in inputs.prompts for _ in range(samples)]
        inputs.group *= samples
        return inputs

    def predict(self, example: Example, prompt: str, chains: list[Generated], seconds: float) -> Prediction:
        """Score an example's chains (majority vote over several) into a prediction."""
        with self._blame("evaluator"):
            scores = [self.evaluator.score(c.text, example) for c in chains]
        score = scores[0] if len(scores) == 1 else majority_vote(scores)
        return Prediction(
            example,
            prompt,
            [c.text for c in chains],
            sum(len(c.token_ids) for c in chains),
            score,
            seconds,
            max(c.peak_kv for c in chains),
            sum(c.dependency for c in chains),
            sum(c.truncated for c in chains),
            [c.soft_steps for c in chains],
        )

    def stream(self, examples: list[Example]) -> Iterator[Prediction]:
        """Answer and score examples; yield each prediction as soon as its chains are done (see :meth:`chains`)."""
        for written in self.chains(examples):
            yield self.predict(written.example, written.prompt, written.chains, written.seconds)

    def chains(self, examples: list[Example], stop: re.Pattern[str] | None = None) -> Iterator[Written]:
        """Write each example's chains; yield them as soon as an example's are done.

        Examples are read longest prompt first, so prompts read together
        need little padding. With ``generation.engine: transformers`` rows
        are decoded with continuous batching (``generation.batch_size`` chains
        at once; see :func:`latentreason.decoding.loop.decode_stream`); with
        ``vllm`` by the vLLM engine. A producer with K thought sets and
        ``generation.samples = s`` gives K*s chains per example. Each result's
        ``seconds`` is the wall time since the previous one was yielded, so they
        add up to the run's time.

        Args:
            examples: what to answer.
            stop: a chain stops once this matches its recent text (default:
                the evaluator's complete answer); ``generation.stop_at_answer`` turns it off.
        """
        stop = stop if stop is not None else self.evaluator.answer_complete
        tokenizer = self.runtime.llm.tokenizer
        order = sorted(examples, key=lambda ex: -len(tokenizer(self.task.format_question(ex))["input_ids"]))
        if self.config.generation.engine == "vllm":
            if self.plan.decoder is not None:
                raise LatentReasonError(
                    f"generation.engine: vllm cannot run decoder {self.plan.decoder.name!r}: a decoding controller "
                    "rewrites the KV cache while the LLM writes, which only the transformers engine allows."
                )
            config = self.config
            yield from vllm_chains(
                self.prompts,
                order,
                self.runtime.llm,
                config.generation,
                dtype=config.models.dtype,
                seed=config.seed,
                stop=stop,
                adapter=self.runtime.adapter,
            )
        elif not (self.config.generation.continuous_batching and supports_rewriting(self.runtime.llm)):
            yield from self._static_batches(order, stop)
        else:
            yield from self._continuous(order, stop)

    def _continuous(self, examples: list[Example], stop: re.Pattern[str] | None) -> Iterator[Written]:
        """:meth:`chains` on the project's decoding loop, with continuous batching."""
        queue = deque(enumerate(examples))
        chains_per_example = self.config.generation.samples  # until the producer's thought sets are known
        prompts: dict[int, str] = {}

        def source(free: int) -> tuple[LLMInputs, list[tuple[int, int]]] | None:
            nonlocal chains_per_example
            capacity = self.config.generation.batch_size
            take = min(len(queue), max(free // chains_per_example, int(free == capacity)))  # an empty batch takes one
            if not take:
                return None
            batch = [queue.popleft() for _ in range(take)]
            inputs = self.prompts([ex for _, ex in batch])
            chains_per_example = inputs.group
            for n, (i, _) in enumerate(batch):
                prompts[i] = inputs.prompts[n * inputs.group]
            return inputs, [(i, c) for i, _ in batch for c in range(inputs.group)]

        done: dict[int, dict[int, Generated]] = {}
        llm, generation = self.runtime.llm, self.config.generation
        clock = time.perf_counter()
        stream = decode_stream(llm, source, generation, self.decoder, stop, capacity=generation.batch_size)
        with self._blame("decoder", self.decoder) if self.decoder else nullcontext():
            for (i, chain), out in stream:
                done.setdefault(i, {})[chain] = out
                if len(done[i]) == chains_per_example:
                    now = time.perf_counter()
                    finished = done.pop(i)
                    yield Written(
                        examples[i], prompts.pop(i), [finished[c] for c in range(chains_per_example)], now - clock
                    )
                    clock = now

    def _static_batches(self, examples: list[Example], stop: re.Pattern[str] | None) -> Iterator[Written]:
        """:meth:`chains` in static batches with ``generate()``: for LLMs the decoding loop cannot rewrite, or on request."""
        size = self.config.generation.batch_size
        llm, generation = self.runtime.llm, self.config.generation
        for start in range(0, len(examples), size):
            batch = examples[start : start + size]
            clock = time.perf_counter()
            inputs = self.prompts(batch)
            if self.decoder is None:
                outputs = generate(llm, inputs, generation, stop)
            else:
                with self._blame("decoder", self.decoder):
                    outputs = decode(llm, inputs, generation, self.decoder, stop)
            seconds = (time.perf_counter() - clock) / len(batch)
            k = inputs.group
            for n, ex in enumerate(batch):
                yield Written(ex, inputs.prompts[n * k], outputs[n * k : (n + 1) * k], seconds)

    def answer(self, examples: list[Example]) -> list[Prediction]:
        """Answer and score examples (see :meth:`stream`); predictions in the order of ``examples``."""
        position = {id(ex): n for n, ex in enumerate(examples)}
        return sorted(self.stream(examples), key=lambda p: position[id(p.example)])
