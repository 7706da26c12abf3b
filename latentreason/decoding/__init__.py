"""Decoding: the continuous-batching loop (:mod:`.loop`) over a rewritable cache
(:mod:`.state`), ``transformers``' ``generate()`` (:mod:`.generate`), segment
boundaries for controllers (:mod:`.segments`, :mod:`.trigger`) and the vLLM
engine (:mod:`.vllm_engine`, :mod:`.vllm_worker`, :mod:`.vllm_lock`)."""
