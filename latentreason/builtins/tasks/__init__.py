"""The built-in tasks, by registered name.

Tasks whose data is shipped in the package (``latentreason/data``) work
offline: gsm8k (test, and the first 2000 train problems), aqua, strategyqa,
date_understanding and svamp; gsm8k-steps reads gsm8k's data with
equation-step rationales (:mod:`~latentreason.builtins.tasks.equation_steps`). The others (asdiv, asdiv_aug, multiarith,
mathqa_bigbench) are not redistributed because of their licenses or size; they
load from ``$LATENTREASON_DATA_DIR/<task>/<split>.jsonl``, an explicit source,
or the Hugging Face hub.
"""

from __future__ import annotations

from latentreason.builtins.tasks.arithmetic import ASDIV, ASDIV_AUG, GSM8K, MULTIARITH, SVAMP
from latentreason.builtins.tasks.choice import AQUA, DATE_UNDERSTANDING, MATHQA_BIGBENCH
from latentreason.builtins.tasks.equation_steps import equation_steps_task
from latentreason.builtins.tasks.yesno import STRATEGYQA
from latentreason.components.task import TaskSpec

BUILTIN_TASKS: dict[str, TaskSpec] = {
    task.name: task
    for task in (
        GSM8K,
        equation_steps_task(GSM8K),
        ASDIV,
        ASDIV_AUG,
        AQUA,
        STRATEGYQA,
        DATE_UNDERSTANDING,
        SVAMP,
        MULTIARITH,
        MATHQA_BIGBENCH,
    )
}
