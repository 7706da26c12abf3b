"""Run configuration (pydantic v2): one :class:`RunConfig` describes a run.

A config comes from defaults, then a YAML file, then CLI overrides given as
dotted keys (``generation.max_new_tokens=64``). Every component is a name plus
options; each plugin validates its own options with its ``Options`` model, and
:func:`latentreason.assembly.resolve.resolve` reports every problem at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from latentreason.errors import ConfigError, LatentReasonError


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class PluginOptions(Strict):
    """Base class of every component's ``Options`` (no options by default).

    ``style_defaults`` maps a prompt style (``RunConfig.prompt_style``) to the
    option values that render it; options the user sets win. Defaults are
    validated too, so a wrong default is found before any model loads.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)

    style_defaults: ClassVar[dict[str, dict[str, Any]]] = {}


class Component(Strict):
    """A component chosen by registered name, with its own options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ModelsConfig(Strict):
    """Which models to load and how."""

    assistant: str = Field("smollm2-135m-instruct", description="assistant model: alias, folder, .gguf or hub id")
    llm: str = Field("qwen2.5-coder-0.5b-instruct", description="reasoning LLM: alias, folder, .gguf or hub id")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="'auto': bfloat16 on CUDA and on CPUs with native bf16 (AMX, AVX512_BF16), else float32"
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="'int8': decoding steps of the frozen models run int8 weights and activations (CPU, evaluation only; "
        "prompts are still read in full precision)",
    )
    device: str = Field("auto", description="'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1', ...")
    device_map: Literal["auto", "balanced", "sequential"] | None = Field(
        None, description="shard the LLM over this node's GPUs in one process (needs accelerate); default: no sharding"
    )
    trust_remote_code: bool = False


class AdapterConfig(Strict):
    """A trainable LoRA adapter on the reasoning LLM (needs ``pip install 'latentreason[lora]'``)."""

    rank: int = Field(8, gt=0, description="LoRA rank r")
    alpha: int = Field(16, gt=0, description="LoRA scaling alpha (the update is scaled by alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input, in training")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
        description="short names of the LLM's linear layers to adapt",
    )
    merge: bool = Field(False, description="fold the trained adapter into the LLM's weights at evaluation (faster)")


class GenerationConfig(Strict):
    """How the LLM writes its chain of thought."""

    engine: Literal["transformers", "vllm"] = Field(
        "transformers",
        description="'transformers': this project's KV-cached loop with continuous batching (every method); "
        "'vllm': the vLLM engine in its own environment, for producers that only inject vectors into the prompt",
    )
    max_new_tokens: int = Field(
        512,
        gt=0,
        description="the token cap of a chain; 512 is the protocol's measured cap (the smallest of 384/512/768/1024 "
        "that cuts fewer than 5% of GSM8K chains, experiments/softcot-gsm8k-pilot.yaml)",
    )
    min_new_tokens: int = Field(
        0, ge=0, description="end-of-turn is not allowed before this many tokens (benchmarks force lengths)"
    )
    batch_size: int = Field(
        16, gt=0, description="chains decoded at once; a finished chain's slot takes the next example"
    )
    continuous_batching: bool = Field(
        True,
        description="false: static batches, every chain of a batch waits for its longest (the behaviour before 0.2)",
    )
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    stop_at_answer: bool = Field(True, description="stop a sequence once its final answer is complete")
    samples: int = Field(1, ge=1, description="chains per question; >1 majority-votes them (self-consistency)")

    @model_validator(mode="after")
    def _sampling_for_votes(self) -> GenerationConfig:
        if self.samples > 1 and not self.do_sample:
            raise ValueError("self-consistency (samples > 1) needs do_sample: true")
        return self


class DataConfig(Strict):
    """Which examples to evaluate on."""

    task: str = "gsm8k"
    split: str | None = Field(None, description="default: the task's evaluation split")
    source: str | None = Field(None, description="local JSONL file/folder or hub dataset id (default: the task's own)")
    limit: int | None = Field(None, gt=0)
    offset: int = Field(0, ge=0)


class TrainConfig(Strict):
    """How trainable components (the projector, trainable producers) are trained."""

    split: str | None = Field(None, description="default: the task's training split")
    limit: int | None = Field(256, gt=0, description="training examples to use (None: all)")
    val_split: str | None = Field(
        None, description="default: the first val_limit examples of the training split, which training then skips"
    )
    val_limit: int = Field(16, ge=0, description="validation examples (loss) after each epoch")
    allow_eval_split: bool = Field(False, description="allow val_split to be the task's evaluation split (test data)")
    epochs: int = Field(1, gt=0)
    batch_size: int = Field(4, gt=0)
    grad_accum: int = Field(1, gt=0)
    group_by_length: bool = Field(
        True,
        description="batch examples of similar length together (less padding; the order is still set by the seed), "
        "see latentreason/training/order.py; false: a plain shuffle, the order of earlier versions",
    )
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(5, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_target_tokens: int = Field(256, gt=0, description="gold rationale+answer tokens kept per example")
    targets: str | None = Field(
        None,
        description="self-distilled targets (a `latentreason distill` file): the LLM's own correct chains replace the "
        "gold rationale+answer of the training rows, rows without one are skipped; validation stays gold "
        "(docs/self-distillation.md)",
    )
    checkpoint_dir: str = Field("checkpoints/{producer}-{task}", description="{producer} and {task} are filled in")
    save_every: int = Field(0, ge=0, description="also checkpoint every N optimizer steps (0: only per epoch)")
    tensorboard: bool = Field(
        False,
        description="also log history.json's scalars to TensorBoard, in <checkpoint_dir>/tensorboard "
        "(pip install 'latentreason[tensorboard]')",
    )


class AuditConfig(Strict):
    """Held-back training questions: the rows the thought audit reads after training, and ``thoughts_from: mean`` averages.

    Never the task's evaluation split. By default they are the rows just
    after the ones ``train`` (with this config's ``train`` section) reads
    from the training split: validation's ``val_limit``, then ``limit``.
    """

    split: str | None = Field(None, description="default: train.split, else the task's training split")
    offset: int | None = Field(
        None,
        ge=0,
        description="default: just past the rows `train` reads from the training split (train.val_limit + "
        "train.limit when validation is held back from it, else train.limit)",
    )
    limit: int = Field(64, ge=1, description="questions (the audit needs at least 10, for its 5-fold probe)")
    after_training: bool = Field(True, description="`train` audits the trained method's thoughts at the end")


class RunConfig(Strict):
    """Everything a run or a training needs; it fully reproduces a run."""

    label: str | None = Field(
        None, description="the method's name in summaries and tables (default: producer or producer+decoder)"
    )
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    producer: Component = Field(default_factory=lambda: Component(name="softcot"))
    projector: Component | None = Field(None, description="default: the producer's preferred projector")
    injector: Component = Field(default_factory=lambda: Component(name="placeholder"))
    evaluator: Component | None = Field(None, description="default: the task's evaluator")
    adapter: AdapterConfig | None = Field(
        None, description="a trainable LoRA adapter on the LLM; default none (frozen LLM)"
    )
    decoder: Component | None = Field(
        None, description="decoding-time controller (compression, re-injection); default none"
    )
    checkpoint: str | list[str] | None = Field(
        None, description="trained weights (.safetensors) to load; several files may each hold some components"
    )
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    prompt_style: Literal["default", "softcot"] = Field(
        "default",
        description="'softcot': the SoftCoT reference wording (concise '## Step' reasoning, a note that the thoughts come "
        "from a weaker assistant, an assistant turn that announces its thought tokens)",
    )
    thoughts_from: Literal["own", "next", "zero", "mean"] = Field(
        "own",
        description="an ablation at evaluation (training always uses 'own'): 'next': the producer reads the next "
        "example of the split instead of the example's own (its question; for the answer-embedding control, its gold "
        "answer), so thoughts keep their form but lose what is specific to the question; 'zero': the LLM receives zero "
        "vectors; 'mean': it receives the mean of the method's own LLM-input vectors over the held-back training "
        "questions of `audit`, the same for every question",
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    seed: int = Field(0, ge=0, lt=2**32, description="seeds initialization, data order and sampling (0 to 2**32-1)")
    output_dir: str = "results"

    def checkpoints(self) -> list[str]:
        """``checkpoint`` as a list of paths."""
        return [self.checkpoint] if isinstance(self.checkpoint, str) else list(self.checkpoint or [])


def format_validation_error(error: ValidationError, prefix: str = "") -> list[str]:
    """Turn a pydantic error into one readable line per problem."""
    lines = []
    for err in error.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(
            f"{loc or '(top level)'}: {msg} (got {err.get('input')!r})"
            if err["type"] != "missing"
            else f"{loc}: required"
        )
    return lines


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``key.sub=value`` strings; values are read as YAML scalars.

    Raises:
        ConfigError: listing every item without ``=``.
    """
    tree: dict[str, Any] = {}
    bad = [item for item in items if "=" not in item]
    if bad:
        raise ConfigError([f"override {b!r} is not of the form key=value" for b in bad], source="--set")
    for item in items:
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base``."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with a clear error if it is malformed."""
    path = Path(path)
    if not path.is_file():
        raise LatentReasonError(f"Config file {str(path)!r} does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LatentReasonError(f"Config file {str(path)!r} is not valid YAML{where}: {problem}.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LatentReasonError(
            f"Config file {str(path)!r} must hold a mapping of sections, not {type(data).__name__}."
        )
    return data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Build a :class:`RunConfig` from defaults, an optional YAML file and overrides.

    Args:
        path: YAML file, or None for defaults only.
        overrides: nested dict applied on top (e.g. from :func:`parse_overrides`).

    Raises:
        LatentReasonError: malformed YAML, or every invalid field at once.
    """
    data = read_yaml(path) if path is not None else {}
    data = merge(data, overrides or {})
    defaults = RunConfig()
    for key in ("producer", "injector"):  # options given without a name belong to the default component
        if isinstance(data.get(key), dict) and "name" not in data[key]:
            data[key] = {"name": getattr(defaults, key).name, **data[key]}
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), source=str(path) if path else "config") from exc


def dump_config(config: RunConfig) -> str:
    """The config as YAML text that :func:`load_config` reads back unchanged."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
