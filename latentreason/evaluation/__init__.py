"""Evaluation: running a method on examples (:mod:`.runner`), results folders (:mod:`.results`),
comparisons (:mod:`.comparison`, :mod:`.experiment`), their statistics and tables
(:mod:`.stats`, :mod:`.tables`), reports (:mod:`.report`) and peak memory (:mod:`.memory`)."""
