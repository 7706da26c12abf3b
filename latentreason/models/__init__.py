"""The frozen models: what to load (:mod:`.spec`), the PyPI model zoo (:mod:`.zoo`),
loading with ``transformers`` (:mod:`.loading`), a run's models (:mod:`.runtime`),
int8 decoding (:mod:`.quantization`) and vLLM's own environment (:mod:`.vllm_env`)."""
