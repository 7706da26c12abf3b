"""Interoperation with other evaluation tools: lm-evaluation-harness (see ``docs/lm-eval.md``).

``lm_eval_model`` runs any latentreason method as an lm-eval model,
``lm_eval_tasks/`` holds lm-eval task files over the shipped data,
``lm_eval_scoring`` applies lm-eval's GSM8K scorers to this project's
generations, and ``lm_eval_export`` writes results folders in lm-eval's
output layout. Everything but the export needs the ``lm-eval`` extra.
"""
