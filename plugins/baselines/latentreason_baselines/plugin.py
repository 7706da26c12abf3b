"""Hook implementations of the baselines plugin (its entry point)."""

from __future__ import annotations

from latentreason.plugin import hookimpl


@hookimpl
def latentreason_producers():
    """Register the baseline producers and the answer-embedding control."""
    from latentreason_baselines.answer import AnswerEmbeddingControl
    from latentreason_baselines.assist import AssistCoT
    from latentreason_baselines.coconut import CoconutThoughts
    from latentreason_baselines.cot import ZeroShotCoT
    from latentreason_baselines.pause import PauseTokens, TrainedPauseTokens

    return {
        "cot": ZeroShotCoT,
        "pause": PauseTokens,
        "pause-trained": TrainedPauseTokens,
        "assist-cot": AssistCoT,
        "coconut": CoconutThoughts,
        "answer-embedding-control": AnswerEmbeddingControl,
    }
