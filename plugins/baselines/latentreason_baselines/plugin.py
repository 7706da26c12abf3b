"""Hook implementations of the baselines plugin (its entry point)."""

from __future__ import annotations

from latentreason.plugin import hookimpl


@hookimpl
def latentreason_producers():
    """Register the baseline producers, the LLM-trained latent methods (coconut, codi) and the answer-embedding control."""
    from latentreason_baselines.answer import AnswerEmbeddingControl
    from latentreason_baselines.assist import AssistCoT
    from latentreason_baselines.coconut import Coconut
    from latentreason_baselines.coconut_frozen import FrozenCoconut
    from latentreason_baselines.codi import Codi
    from latentreason_baselines.cot import ZeroShotCoT
    from latentreason_baselines.no_cot import NoCoT
    from latentreason_baselines.pause import PauseTokens, TrainedPauseTokens

    return {
        "cot": ZeroShotCoT,
        "no-cot": NoCoT,
        "pause": PauseTokens,
        "pause-trained": TrainedPauseTokens,
        "assist-cot": AssistCoT,
        "coconut": Coconut,
        "coconut-frozen": FrozenCoconut,
        "codi": Codi,
        "answer-embedding-control": AnswerEmbeddingControl,
    }
