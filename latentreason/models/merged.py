"""The LLM with its LoRA adapter folded into its weights, saved as a plain model folder (what vLLM loads).

vLLM loads weights from disk and knows nothing of the adapter injected into
the LLM in memory. The folder holds the LLM's own architecture and tokenizer,
each adapted linear layer's weight with the LoRA product added (the adapter's
:meth:`~latentreason.models.adapter.Adapter.merge`), and no LoRA tensors.
It is named by a digest of the LLM's source and the adapter's weights, so
the same trained method reuses it and another adapter gets its own.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from latentreason.models.adapter import Adapter
from latentreason.models.spec import LoadedModel


def merged_folder(llm: LoadedModel, adapter: Adapter, root: Path) -> Path:
    """The model folder of ``llm`` with ``adapter`` merged, under ``root`` (written on first use, atomically).

    The adapter is left merged or unmerged as it was.

    Args:
        llm: the LLM the adapter is injected into.
        adapter: its LoRA adapter.
        root: the folder that holds merged models.
    """
    digest = hashlib.sha256(llm.source.encode())
    for name, tensor in sorted(adapter.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    folder = root / digest.hexdigest()[:16]
    if (folder / "config.json").is_file():
        return folder
    merged = all(layer.merged for layer in adapter.layers())
    adapter.merge()
    try:
        state = {
            key.replace(".base_layer", ""): value for key, value in llm.model.state_dict().items() if "lora_" not in key
        }
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        llm.model.save_pretrained(partial, state_dict=state)
        llm.tokenizer.save_pretrained(partial)
        partial.rename(folder)
    finally:
        if not merged:
            adapter.unmerge()
    return folder
