"""Decoding: the continuous-batching loop (:mod:`.loop`) over a rewritable cache
(:mod:`.state`), ``transformers``' ``generate()`` (:mod:`.generate`), segment
boundaries for controllers (:mod:`.segments`, :mod:`.trigger`) and the vLLM
engine (:mod:`.vllm`, :mod:`.vllm_worker`)."""
