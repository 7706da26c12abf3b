"""The ``lm-eval`` extra: one clear message wherever lm-evaluation-harness is needed and missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from latentreason.errors import LatentReasonError

LM_EVAL_VERSION = "0.4.13"
"""The lm-evaluation-harness release the integration is written and tested against."""

INSTALL_HINT = "pip install 'latentreason[lm-eval]'"


class MissingExtraError(LatentReasonError, ImportError):
    """An optional dependency of a latentreason feature is not installed.

    It is also an ``ImportError``, so code that probes for optional modules
    keeps working; the CLI prints its message without a traceback.
    """


def require_lm_eval() -> ModuleType:
    """Import lm-evaluation-harness.

    Returns:
        The ``lm_eval`` module.

    Raises:
        MissingExtraError: it is not installed; the message says how to install it.
    """
    try:
        return importlib.import_module("lm_eval")
    except ImportError as exc:
        raise MissingExtraError(
            f"This needs lm-evaluation-harness (lm-eval {LM_EVAL_VERSION}), which is not installed ({exc}). "
            f"Install the extra: {INSTALL_HINT} (from a checkout: pip install -e '.[lm-eval]')."
        ) from None
