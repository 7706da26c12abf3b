"""The plugin API: everything a plugin author needs, from one stable module.

A plugin imports from here and nowhere else in ``latentreason`` (the shipped
plugins do; a test checks it). Names here keep their meaning within a major
version; anything else in the package may move. ``docs/plugins.md`` is the
tutorial and lists each component kind's constructor contract.

Hooks and options
    ``hookimpl`` marks a plugin's hook functions (the hooks are in
    :mod:`latentreason.hooks.specs`); ``PluginOptions`` is the base of every
    component's ``Options`` (pydantic, unknown keys are errors);
    ``GenerationConfig`` configures text generation.

Component kinds (base class, then what it makes or takes)
    producers (``ThoughtProducer`` -> ``Thoughts``; ``LatentPrefixProducer``
    for thoughts that are the LLM's own states before it writes), projectors
    (``Projector``), injectors (``Injector`` -> ``LLMInputs``, with
    ``IGNORE_INDEX`` for unsupervised labels), evaluators (``Evaluator`` ->
    ``Score``), decoding controllers (``DecodingController``, steering a
    ``DecodeState``), tasks (``TaskSpec`` with ``Example``, ``AnswerType``,
    ``HubSource``).

Models
    ``Runtime`` (a run's models, loaded on first use), ``LoadedModel`` (a
    frozen LM and its tokenizer), ``ModelSpec`` (what a model loader loads).

Helpers the shipped plugins use
    prompts with spans spliced in at exact positions (``encode_chat``,
    ``render_chat``, ``SLOT``, ``marker_ids``, ``placeholder_id``,
    ``text_token_id``, ``end_of_turn_id``); left-padded batches (``pad_batch``, ``pad_left``,
    ``position_ids``); text generation with the project's loop (``decode``,
    ``Generated``); segments of a chain for controllers (``SegmentOptions``,
    ``Boundaries``); answer extraction for evaluators (``strict_answer``,
    ``flexible_answer``, ``answers_equal``, ``NUMBER_BOXED_PATTERN``,
    ``CHOICE_BOXED_PATTERN``, ``YESNO_BOXED_PATTERN``); step rationales
    split into steps and final line (``target_steps``); the NLL of
    supervised tokens from hidden states, for a method's own training loss
    (``target_nll``); and
    ``LatentReasonError`` for errors a user can fix.
"""

from latentreason.builtins.tasks.equation_steps import target_steps
from latentreason.components.answers import (
    CHOICE_BOXED_PATTERN,
    NUMBER_BOXED_PATTERN,
    YESNO_BOXED_PATTERN,
    answers_equal,
    flexible_answer,
    strict_answer,
)
from latentreason.components.batching import pad_batch, pad_left, position_ids
from latentreason.components.decoder import DecodingController
from latentreason.components.evaluator import Evaluator, Score
from latentreason.components.example import AnswerType, Example
from latentreason.components.injector import IGNORE_INDEX, Injector, LLMInputs
from latentreason.components.latent_producer import LatentPrefixProducer
from latentreason.components.producer import ThoughtProducer, Thoughts
from latentreason.components.projector import Projector
from latentreason.components.prompting import (
    SLOT,
    encode_chat,
    end_of_turn_id,
    marker_ids,
    placeholder_id,
    render_chat,
    text_token_id,
)
from latentreason.components.task import HubSource, TaskSpec
from latentreason.config import GenerationConfig, PluginOptions
from latentreason.decoding.generate import Generated
from latentreason.decoding.loop import decode
from latentreason.decoding.segments import Boundaries, SegmentOptions
from latentreason.decoding.state import DecodeState
from latentreason.errors import LatentReasonError
from latentreason.hooks.specs import hookimpl
from latentreason.models.runtime import Runtime
from latentreason.models.spec import LoadedModel, ModelSpec
from latentreason.training.trainer import llm_states, target_nll

__all__ = [
    "CHOICE_BOXED_PATTERN",
    "IGNORE_INDEX",
    "NUMBER_BOXED_PATTERN",
    "SLOT",
    "YESNO_BOXED_PATTERN",
    "AnswerType",
    "Boundaries",
    "DecodeState",
    "DecodingController",
    "Evaluator",
    "Example",
    "Generated",
    "GenerationConfig",
    "HubSource",
    "Injector",
    "LLMInputs",
    "LatentPrefixProducer",
    "LatentReasonError",
    "LoadedModel",
    "ModelSpec",
    "PluginOptions",
    "Projector",
    "Runtime",
    "Score",
    "SegmentOptions",
    "TaskSpec",
    "ThoughtProducer",
    "Thoughts",
    "answers_equal",
    "decode",
    "encode_chat",
    "end_of_turn_id",
    "flexible_answer",
    "hookimpl",
    "llm_states",
    "marker_ids",
    "pad_batch",
    "pad_left",
    "placeholder_id",
    "position_ids",
    "render_chat",
    "strict_answer",
    "target_nll",
    "target_steps",
    "text_token_id",
]
