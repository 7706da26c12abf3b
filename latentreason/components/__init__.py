"""The component kinds a method is built from, and the types they exchange.

One module per kind: :mod:`~latentreason.components.producer` (thoughts),
:mod:`~latentreason.components.projector`, :mod:`~latentreason.components.injector`
(LLM inputs), :mod:`~latentreason.components.evaluator` (scores),
:mod:`~latentreason.components.decoder` (decoding controllers) and
:mod:`~latentreason.components.task` (datasets, with
:mod:`~latentreason.components.example` and the row checks in
:mod:`~latentreason.components.rows`); plus the helpers components build
prompts with (:mod:`~latentreason.components.prompting`,
:mod:`~latentreason.components.batching`). Plugin authors import all of it
from :mod:`latentreason.plugin`.
"""
