"""Speed measurements of the data path: what ``latentreason bench`` runs (see docs/performance.md).

:mod:`.settings` (what is measured on), :mod:`.hardware` (timing and machine
probes), :mod:`.stages` (one example stage by stage, a raw decoding loop),
:mod:`.measure` (the measurements of one dtype), :mod:`.end_to_end` (whole
evaluations, old defaults against the fast settings) and :mod:`.run` (one
run of everything and its report).
"""
