"""Training of a pipeline's trainable components (the SoftCoT projector, ...).

The assistant and the LLM stay frozen. The loss is the NLL of the gold
rationale and answer, or of a self-distilled chain
(:mod:`latentreason.training.targets`), ending with the end-of-turn token so
the model learns to stop, given the prompt with injected thoughts. Logits are
computed only at supervised positions.

Everything needed to continue is in one atomically written
``state.safetensors``: weights, optimizer and scheduler state, RNG states and
the data position. An interrupted run (Ctrl-C, SIGTERM, kill -9) resumes from
its last saved step with the same command.

Under torchrun every rank takes its contiguous share of each global batch
(:meth:`latentreason.distributed.World.share`) and the gradients of the
trainable parameters are summed over ranks, with each rank's loss weighted so
that the sum is exactly the loss of the whole batch: N ranks train the same
weights as one process, up to float rounding. Only rank 0 writes files.

The frozen models compute in the dtype of ``models.dtype`` (``auto``: bf16
where the hardware has it); every trainable part keeps float32 master
weights, their gradients and optimizer state are float32, and the loss's
log-softmax runs in float32. Batches group examples of similar length
(:mod:`latentreason.training.order`). The progress bar shows the loss,
examples/s and the time left; ``train.tensorboard`` also logs
``history.json``'s scalars to TensorBoard.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from latentreason import distributed
from latentreason.assembly.pipeline import Pipeline
from latentreason.components.batching import position_ids
from latentreason.components.example import Example
from latentreason.components.injector import IGNORE_INDEX, LLMInputs
from latentreason.components.prompting import end_of_turn_id
from latentreason.config import TrainConfig
from latentreason.errors import LatentReasonError
from latentreason.models.spec import LoadedModel
from latentreason.storage import atomic_write, file_digest, save_weights
from latentreason.training.order import epoch_order
from latentreason.training.tensorboard import summary_writer

if TYPE_CHECKING:
    from latentreason.evaluation.audit import Audit
    from latentreason.training.targets import TargetsFile, TargetsUse

STATE_FILE = "state.safetensors"
WEIGHTS_FILE = "last.safetensors"
TENSORBOARD_FOLDER = "tensorboard"

EARLIER_OPTIMIZATION = {"group_by_length": False}
"""What a training state written before an optimization setting existed ran with (compared on resume)."""


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        weights: the final trained weights (``last.safetensors``).
        history: ``{"step", "loss", "lr"}`` per optimizer step.
        validation: ``{"epoch", "loss"}`` per epoch.
        examples_per_s: training throughput of this invocation.
        started_from: the checkpoint files the trained parts started from
            (empty: their seeded initialization).
        audit: the trained method's thought audit (set by ``api.train``), or None.
        targets: how the training used self-distilled targets (set by ``api.train``), or None.
    """

    weights: Path
    history: list[dict[str, float]] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)
    examples_per_s: float = 0.0
    started_from: list[str] = field(default_factory=list)
    audit: Audit | None = None
    targets: TargetsUse | None = None


def _jsonable_rng(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


class _Stop(Exception):
    """Raised by the signal handler to stop at the next safe point."""


def gold_targets(pipeline: Pipeline, examples: list[Example], max_tokens: int) -> dict[str, list[int]]:
    """Gold token ids per example id: the task's target text as the producer trains on it (see :func:`method_targets`)."""
    return method_targets(pipeline, examples, [pipeline.task.target_text(ex) for ex in examples], max_tokens)


def method_targets(
    pipeline: Pipeline, examples: list[Example], texts: list[str], max_tokens: int
) -> dict[str, list[int]]:
    """Token ids per example id of each example's target text, rewritten by the producer (see :func:`target_ids`).

    The producer may rewrite the texts (:meth:`ThoughtProducer.train_targets`:
    Coconut drops the steps its thoughts replace, ``no-cot`` keeps the final line).
    """
    rewritten = pipeline.producer.train_targets(examples, texts)
    return target_ids(pipeline, {ex.id: text for ex, text in zip(examples, rewritten, strict=True)}, max_tokens)


def target_ids(pipeline: Pipeline, texts: Mapping[str, str], max_tokens: int) -> dict[str, list[int]]:
    """Token ids per example id: its target text, then end-of-turn, at most ``max_tokens`` in all.

    A target too long for that is cut to its first ``max_tokens`` tokens and
    gets no end-of-turn, so the LLM is never taught to stop in the middle of
    its reasoning.

    Args:
        pipeline: supplies the LLM's tokenizer.
        texts: the target text per example id.
        max_tokens: the longest a target may be, end-of-turn included.
    """
    tokenizer = pipeline.runtime.llm.tokenizer
    stop = end_of_turn_id(tokenizer)
    targets = {}
    for key, text in texts.items():
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        targets[key] = [*ids, stop] if len(ids) < max_tokens else ids[:max_tokens]
    return targets


def llm_states(pipeline: Pipeline, inputs: LLMInputs, all_layers: bool = False) -> tuple[torch.Tensor, ...]:
    """The LLM's hidden states over every column of ``inputs``, computed only where they are not known.

    Rows that continue a latent prefix (``inputs.prefix``) start at its last
    thought: the prompt and the first K-1 thoughts were computed with it,
    gradients and all. Otherwise, with gradients on and nothing to train
    inside the LLM, the leading columns no trainable part shapes
    (``inputs.fixed_columns``: padding, the system prompt and question
    before the thoughts) run first without gradients, and the rest attends
    to their cached keys and values: the backward pass then skips them.
    Either way the states, the loss and the gradients are those of one pass
    over every column.

    Args:
        pipeline: the method (its LLM).
        inputs: the rows.
        all_layers: every hidden state the model returns (the embedding output
            and each block's, the last after the final norm), not only the last.

    Returns:
        ``(B, T, d_llm)`` per layer: the last layer's alone, or all of them.
    """
    model = pipeline.runtime.llm.model.base_model
    embeds, mask = inputs.inputs_embeds, inputs.attention_mask  # (B, T, d_llm), (B, T)
    positions = position_ids(mask)  # (B, T)
    pick = (lambda out: out.hidden_states) if all_layers else (lambda out: (out.last_hidden_state,))
    if inputs.prefix is not None:
        start, cache = inputs.prefix.columns, inputs.prefix.cache()
        known = inputs.prefix.layers if all_layers else inputs.prefix.layers[-1:]  # per layer (B, start, d_llm)
    else:
        start = inputs.fixed_columns
        if not torch.is_grad_enabled() or any(p.requires_grad for p in model.parameters()):
            start = 0  # nothing to save without a backward pass; an adapter's gradients need every column
        if not 0 < start < embeds.shape[1]:
            return pick(
                model(
                    inputs_embeds=embeds,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=False,
                    output_hidden_states=all_layers,
                )
            )  # per layer (B, T, d_llm)
        with torch.no_grad():
            fixed = model(
                inputs_embeds=embeds[:, :start],
                attention_mask=mask[:, :start],
                position_ids=positions[:, :start],
                use_cache=True,
                output_hidden_states=all_layers,
            )  # the keys and values of the first ``start`` columns
        cache, known = fixed.cache, pick(fixed)  # per layer (B, start, d_llm)
    rest = model(
        inputs_embeds=embeds[:, start:],
        attention_mask=mask,
        position_ids=positions[:, start:],
        cache=cache,
        use_cache=True,
        output_hidden_states=all_layers,
    )  # per layer (B, T - start, d_llm)
    return tuple(torch.cat(parts, dim=1) for parts in zip(known, pick(rest)))  # per layer (B, T, d_llm)


def teacher_forced(
    pipeline: Pipeline, examples: list[Example], targets: list[list[int]]
) -> tuple[LLMInputs, torch.Tensor]:
    """One forward pass of the LLM over each example's prompt, thoughts and gold ``targets`` (see :func:`llm_states`).

    Returns:
        The inputs (``labels`` mark the target tokens) and the last-layer
        hidden states ``(B*K, T, d_llm)`` (K thought sets per example, consecutive rows).
    """
    inputs = pipeline.inputs(examples, targets)
    (hidden,) = llm_states(pipeline, inputs)  # (B*K, T, d_llm)
    return inputs, hidden


def supervised_loss(pipeline: Pipeline, examples: list[Example], targets: list[list[int]]) -> torch.Tensor:
    """Mean NLL of ``targets`` given each example's prompt and thoughts, plus the producer's own term.

    With several thought sets per question every set's row is supervised with
    the question's targets. A producer's extra loss (``inputs.loss``, e.g.
    SoftCoT++'s weighted contrastive term) is added as it is.

    Args:
        pipeline: supplies the inputs (gradients flow into its trainable parts).
        examples: the batch.
        targets: gold token ids per example.
    """
    inputs, hidden = teacher_forced(pipeline, examples, targets)  # hidden: (B, T, d_llm)
    assert inputs.labels is not None  # built with targets
    loss = target_nll(pipeline.runtime.llm, hidden, inputs.labels)
    return loss if inputs.loss is None else loss + inputs.loss.to(loss.device)


def target_nll(llm: LoadedModel, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL of the supervised tokens of ``labels`` ``(B, T)`` from the LLM's last hidden states ``(B, T, d_llm)``.

    Token t is predicted at position t-1; logits are computed at supervised
    positions only (with the model's final soft-capping, if any), in float32.
    """
    labels = labels[:, 1:].to(hidden.device)  # (B, T-1) (a sharded LLM returns hidden states on its last device)
    supervised = labels != IGNORE_INDEX
    logits = llm.model.lm_head(hidden[:, :-1][supervised])  # (M, V), supervised positions only
    cap = getattr(llm.model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits.float(), labels[supervised].to(logits.device))


def batch_loss(
    pipeline: Pipeline, world: distributed.World, batch: list[Example], targets: dict[str, list[int]], count: int
) -> torch.Tensor | None:
    """This rank's part of ``loss(batch) * len(batch) / count``; None if its share is empty.

    A batch's loss is the mean NLL over its target tokens: the decoder's
    :meth:`~latentreason.components.decoder.DecodingController.training_loss` if it gives one,
    else the producer's (:meth:`~latentreason.components.producer.ThoughtProducer.training_loss`, e.g.
    CODI's), else :func:`supervised_loss`. A rank holding part of the batch weights
    its own token mean by its share of the batch's target tokens, so the
    parts of all ranks sum to exactly the loss one process computes for
    the whole batch.

    Args:
        pipeline: the method.
        world: the torchrun world (one process: a world of one).
        batch: the global batch.
        targets: gold token ids per example id.
        count: examples in the whole optimizer step (or validation set).
    """
    share = world.share(batch)
    if not share:
        return None
    token_share = sum(len(targets[e.id]) for e in share) / sum(len(targets[e.id]) for e in batch)
    mine = [targets[e.id] for e in share]
    decoder = pipeline.decoder
    loss = decoder.training_loss(pipeline, share, mine) if decoder is not None else None
    if loss is None:
        loss = pipeline.producer.training_loss(pipeline, share, mine)
    if loss is None:
        loss = supervised_loss(pipeline, share, mine)
    return loss * (token_share * len(batch) / count)


def mean_loss(
    pipeline: Pipeline,
    world: distributed.World,
    examples: list[Example],
    targets: dict[str, list[int]],
    batch_size: int,
) -> float:
    """The loss of ``examples`` as validation computes it: batches of ``batch_size``, weighted by examples.

    Runs without gradients; every rank returns the same number.
    """
    local = 0.0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            part = batch_loss(pipeline, world, examples[start : start + batch_size], targets, len(examples))
            local += 0.0 if part is None else part.item()
    return distributed.sum_over_ranks(local)


class Trainer:
    """Trains ``pipeline.trainable()`` on examples, with checkpoints and resume.

    Args:
        pipeline: the method; its trainable components are optimized.
        train: training examples.
        validation: examples for the per-epoch validation loss.
        config: optimization settings.
        out_dir: checkpoint folder (created).
        seed: seeds data order and initialization.
        progress: show a progress bar (on rank 0 only).
        distilled: self-distilled targets with a chain for every training
            example (None: the gold); validation stays on the gold.

    Attributes:
        targets: the token ids each example is supervised with.
        cut: ids of the training examples whose target is longer than
            ``config.max_target_tokens`` and is cut (no end of turn).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        train: list[Example],
        validation: list[Example],
        config: TrainConfig,
        out_dir: str | Path,
        *,
        seed: int = 0,
        progress: bool = True,
        distilled: TargetsFile | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.modules = pipeline.trainable()
        if not self.modules:
            raise LatentReasonError(
                f"Nothing to train: producer {pipeline.config.producer.name!r} with projector "
                f"{pipeline.plan.projector.name!r} has no trainable parameters."
            )
        self.train_examples = train
        self.validation = validation
        self.config = config
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.world = distributed.current()  # the process group prepare() joined
        self.progress = progress and self.world.is_main
        self.distilled = distilled
        if distilled is None:
            self.targets = gold_targets(pipeline, train + validation, config.max_target_tokens)
        else:
            texts = [distilled.rows[ex.id]["target"] for ex in train]
            own = method_targets(pipeline, train, texts, config.max_target_tokens)
            self.targets = own | gold_targets(pipeline, validation, config.max_target_tokens)
        tokenizer = pipeline.runtime.llm.tokenizer
        stop = end_of_turn_id(tokenizer)
        self.cut = [ex.id for ex in train if self.targets[ex.id][-1:] != [stop]]  # longer than max_target_tokens
        self.lengths = [  # what each example adds to a row beyond the prompt every example shares
            len(tokenizer("\n".join((ex.question, *ex.choices)), add_special_tokens=False)["input_ids"])
            + len(self.targets[ex.id])
            for ex in train
        ]
        self.params = [p for m in self.modules.values() for p in m.parameters() if p.requires_grad]
        for p in self.params:
            p.data = p.data.float()  # fp32 master weights, whatever the LLM's dtype
        distributed.broadcast_parameters(self.params)  # every rank starts from rank 0's initialization
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.batches_per_epoch = math.ceil(len(train) / config.batch_size)
        self.total_steps = math.ceil(self.batches_per_epoch / config.grad_accum) * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self.epoch = 0
        self.batch = 0  # next batch within the epoch
        self.history: list[dict[str, float]] = []
        self.val_history: list[dict[str, float]] = []
        self.tensorboard: Any = None  # a SummaryWriter while run() runs with train.tensorboard
        self.seen, self.start_time = 0, 0.0  # examples trained and start time of this sitting
        self.settings = self._settings()  # fixed for the run: written with each state, checked on resume

    def _lr_factor(self, step: int) -> float:
        """Linear warm-up, then linear decay to 10% of the peak."""
        warmup = self.config.warmup_steps
        if step < warmup:
            return (step + 1) / warmup
        remaining = max(1, self.total_steps - warmup)
        return max(0.1, 1.0 - 0.9 * (step - warmup) / remaining)

    def _order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return epoch_order(self.lengths, self.config.batch_size, generator, self.config.group_by_length)

    # -- state -------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {
            "components": self.pipeline.components(),
            "started_from": self.pipeline.checkpoints,
            "task": self.pipeline.task.name,
            **self._targets(),
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
        }

    def save(self) -> None:
        """Write the full training state, then the usable weights, atomically (rank 0 only)."""
        if not self.world.is_main:
            return
        tensors = {
            f"weights.{name}.{k}": v.detach().cpu().contiguous()
            for name, m in self.modules.items()
            for k, v in m.state_dict().items()
        }
        optimizer = self.optimizer.state_dict()
        for index, state in optimizer["state"].items():
            for key, value in state.items():
                tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["rng.torch"] = torch.get_rng_state()
        info = {
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch,
            "param_groups": optimizer["param_groups"],
            "scheduler": self.scheduler.state_dict(),
            "python_rng": _jsonable_rng(random.getstate()),
            "history": self.history,
            "validation": self.val_history,
            "seed": self.seed,
            "n_train": len(self.train_examples),
            "settings": self.settings,
        }
        atomic_write(
            self.out_dir / STATE_FILE, lambda tmp: save_file(tensors, tmp, metadata={"state": json.dumps(info)})
        )
        save_weights(self.out_dir / WEIGHTS_FILE, self.modules, self._meta())
        atomic_write(
            self.out_dir / "history.json",
            lambda tmp: Path(tmp).write_text(
                json.dumps({"train": self.history, "validation": self.val_history}, indent=1)
            ),
        )

    def _settings(self) -> dict[str, Any]:
        """What a resumed run must share with the run that wrote the state: data, optimization, components, start."""
        ids = [ex.id for ex in self.train_examples], [ex.id for ex in self.validation]
        return {
            "train examples": hashlib.sha256("\n".join(ids[0]).encode()).hexdigest(),
            "validation examples": hashlib.sha256("\n".join(ids[1]).encode()).hexdigest(),
            "optimization": self.config.model_dump(
                mode="json", exclude={"checkpoint_dir", "save_every", "tensorboard"}
            ),
            "components": self.pipeline.components(),
            "started from": sorted(file_digest(p) for p in self.pipeline.checkpoints),
            **self._targets(),
            "models dtype": str(self.pipeline.runtime.llm.model.get_input_embeddings().weight.dtype).removeprefix(
                "torch."
            ),
        }

    def _targets(self) -> dict[str, str]:
        """``{"targets": sha256}`` of the self-distilled targets file the training uses, else nothing."""
        return {"targets": file_digest(self.distilled.path)} if self.distilled is not None else {}

    def _differences(self, stored: dict[str, Any]) -> list[str]:
        """The settings in which a stored state's run differs from this one, each with both values where short.

        A setting the state does not record (written before it existed) is
        not compared, except optimization settings, which count with the value
        earlier versions ran (:data:`EARLIER_OPTIMIZATION`).
        """
        differ = []
        for key, mine in self.settings.items():
            if key not in stored:
                continue
            theirs = stored[key]
            if key == "optimization":
                theirs = EARLIER_OPTIMIZATION | theirs
                differ += [
                    f"train.{k} ({theirs.get(k)!r} there, {mine[k]!r} here)" for k in mine if theirs.get(k) != mine[k]
                ]
            elif key == "models dtype" and theirs != mine:
                differ.append(f"models.dtype ({theirs} there, {mine} here)")
            elif theirs != mine:
                differ.append(key)
        return differ

    def resume(self) -> bool:
        """Load ``state.safetensors`` if present. Returns whether it was found."""
        path = self.out_dir / STATE_FILE
        if not path.exists():
            return False
        try:
            with safe_open(str(path), framework="pt") as f:
                info = json.loads(f.metadata()["state"])
            tensors = load_file(str(path))
        except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise LatentReasonError(
                f"{str(path)!r} is not a training state written by latentreason ({type(exc).__name__}: {exc}); "
                "only safetensors are read. Delete it to start over, or use another checkpoint_dir."
            ) from exc
        if info["n_train"] != len(self.train_examples) or info["seed"] != self.seed:
            raise LatentReasonError(
                f"{str(path)!r} belongs to a run with {info['n_train']} training examples and seed {info['seed']}, "
                f"not {len(self.train_examples)} and {self.seed}; use another checkpoint_dir or delete it."
            )
        stored = info.get("settings")  # states written before 2026-11-29 have none
        differ = self._differences(stored) if stored is not None else []
        if differ:
            raise LatentReasonError(
                f"{str(path)!r} belongs to a run with other {', '.join(differ)}; resuming would mix two trainings. "
                "Run the command that started it, use another checkpoint_dir, or delete it to start over."
            )
        for name, module in self.modules.items():
            prefix = f"weights.{name}."
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(state)
            except RuntimeError as exc:
                raise LatentReasonError(f"{str(path)!r} does not fit this run's {name}: {exc}") from exc
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                opt_state.setdefault(int(index), {})[name] = value
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": info["param_groups"]})
        self.scheduler.load_state_dict(info["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        version, internal, gauss = info["python_rng"]
        random.setstate((version, tuple(internal), gauss))
        self.step, self.epoch, self.batch = info["step"], info["epoch"], info["batch"]
        self.history, self.val_history = info["history"], info["validation"]
        return True

    # -- loop --------------------------------------------------------------

    def validate(self) -> float | None:
        """Mean validation loss (over all ranks), or None without validation examples."""
        if not self.validation:
            return None
        self._train_mode(False)
        loss = mean_loss(self.pipeline, self.world, self.validation, self.targets, self.config.batch_size)
        self._train_mode(True)
        return loss

    def _train_mode(self, mode: bool) -> None:
        """Switch the trained modules' dropout (e.g. an adapter's) on or off; the frozen models stay in eval mode."""
        for module in self.modules.values():
            module.train(mode)

    def run(self) -> TrainResult:
        """Train to the configured number of epochs, resuming if a state exists."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.resume()
        distributed.agree(
            {"step": self.step, "epoch": self.epoch, "batch": self.batch},
            f"the training state in {str(self.out_dir)!r}",
            "Every rank reads it, so with several nodes the checkpoint folder must be on a filesystem they all share.",
        )
        self.tensorboard = (
            summary_writer(self.out_dir / TENSORBOARD_FOLDER, self.step + 1)
            if self.config.tensorboard and self.world.is_main
            else None
        )
        stop_requested = []

        def request_stop(signum, frame):
            stop_requested.append(signum)
            raise _Stop

        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        self._train_mode(True)
        self.seen, self.start_time = 0, time.perf_counter()
        n = len(self.train_examples)
        bar = tqdm(
            total=n * self.config.epochs,
            initial=self.epoch * n + min(n, self.batch * self.config.batch_size),
            desc="train",
            unit="ex",
            disable=not self.progress,
        )
        try:
            while self.epoch < self.config.epochs:
                order = self._order(self.epoch)
                while self.batch < self.batches_per_epoch:
                    self.seen += self._accumulate(order, bar)
                loss = self.validate()
                if loss is not None:
                    self.val_history.append({"epoch": self.epoch + 1, "loss": loss})
                    if self.tensorboard is not None:
                        self.tensorboard.add_scalar("validation/loss", loss, self.step)
                    if self.world.is_main:
                        bar.write(f"epoch {self.epoch + 1}: validation loss {loss:.4f}")
                self.epoch += 1
                self.batch = 0
                self.save()
                if self.world.is_main:
                    save_weights(self.out_dir / f"epoch-{self.epoch}.safetensors", self.modules, self._meta())
        except _Stop:
            if self.world.is_main:
                bar.write(f"interrupted: progress saved at step {self.step}; run the same command again to resume")
            raise KeyboardInterrupt from None
        finally:
            self._train_mode(False)
            bar.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        distributed.barrier()  # rank 0's files are complete before any rank returns
        return TrainResult(
            self.out_dir / WEIGHTS_FILE,
            self.history,
            self.val_history,
            self._examples_per_s(),
            list(self.pipeline.checkpoints),
        )

    def _accumulate(self, order: list[int], bar) -> int:
        """Run ``grad_accum`` global batches and one optimizer step. Returns examples seen (all ranks)."""
        size, accum = self.config.batch_size, self.config.grad_accum
        first = self.batch
        last = min(first + accum, self.batches_per_epoch)
        batches = [[self.train_examples[i] for i in order[b * size : (b + 1) * size]] for b in range(first, last)]
        count = sum(len(batch) for batch in batches)
        self.optimizer.zero_grad(set_to_none=True)
        local = 0.0
        try:
            for batch in batches:
                part = batch_loss(self.pipeline, self.world, batch, self.targets, count)
                if part is not None:
                    if torch.isfinite(part):
                        part.backward()
                    local += part.item()
                bar.update(len(batch))
        except _Stop:
            self.optimizer.zero_grad(set_to_none=True)
            self.save()  # the state of the last finished step; the partial step is redone on resume
            raise
        loss = distributed.sum_over_ranks(local)  # the step's loss, the same on every rank
        if not math.isfinite(loss):
            raise LatentReasonError(
                f"Training loss became {loss} at step {self.step + 1}; stopped. The last good "
                f"checkpoint is kept in {str(self.out_dir)!r}. Try a lower train.lr."
            )
        distributed.reduce_gradients(self.params)
        torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.batch = last
        record = {"step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0]}
        self.history.append(record)
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/loss", loss, self.step)
            self.tensorboard.add_scalar("train/lr", record["lr"], self.step)
        bar.set_postfix({"loss": f"{loss:.4f}", "ex/s": f"{(self.seen + count) / self._elapsed():.2f}"})
        if self.config.save_every and self.step % self.config.save_every == 0:
            self.save()
        return count

    def _elapsed(self) -> float:
        """Seconds since this sitting's training loop started."""
        return time.perf_counter() - self.start_time

    def _examples_per_s(self) -> float:
        """Training examples (all ranks) per second in this sitting."""
        elapsed = self._elapsed()
        return self.seen / elapsed if elapsed else 0.0
