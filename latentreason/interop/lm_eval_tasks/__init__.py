"""lm-eval task files over the data shipped with latentreason (passed to lm-eval as ``--include_path``)."""
