"""What a model is: :class:`ModelSpec` (what to load) and :class:`LoadedModel` (a frozen LM and its tokenizer)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from latentreason.errors import LatentReasonError
from latentreason.models.zoo import KNOWN_MODELS

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


_EMBED_NORM_CHUNK = 8192


@dataclass(frozen=True)
class ModelSpec:
    """What to load.

    Attributes:
        name: an alias from :data:`KNOWN_MODELS`, a local folder, a path to a
            ``.gguf`` file, or a Hugging Face hub id.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        device: a resolved torch device string, e.g. ``"cpu"`` or ``"cuda:0"``.
        trust_remote_code: allow a hub model's own Python code to run.
        device_map: shard the model over the visible GPUs with accelerate
            (``"auto"``, ``"balanced"``, ``"sequential"``) instead of putting it on ``device``.
    """

    name: str
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False
    device_map: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise LatentReasonError(
                "A model name must be a non-empty string: an alias "
                f"({', '.join(KNOWN_MODELS)}), a local folder, a .gguf file or a hub id."
            )
        if self.dtype not in DTYPES:
            raise LatentReasonError(
                f"Unknown model dtype {self.dtype!r} for model {self.name!r}; use one of {', '.join(DTYPES)}."
            )

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by :attr:`dtype`."""
        return DTYPES[self.dtype]


@dataclass
class LoadedModel:
    """A frozen causal LM in eval mode with its tokenizer.

    Attributes:
        model: the transformers causal LM; every parameter has
            ``requires_grad=False``.
        tokenizer: its tokenizer, padding on the left, with a pad token.
        name: the name it was asked for (``ModelSpec.name``).
        source: where it was actually loaded from (a folder, a ``.gguf`` file
            or a hub id).
        int8: the model's int8 twin for decoding steps (see
            :mod:`latentreason.models.quantization`), or None.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    source: str
    int8: torch.nn.Module | None = None

    @property
    def stepper(self) -> PreTrainedModel:
        """The model that runs decoding steps: the int8 twin with ``models.quantize: int8``, else :attr:`model`."""
        return self.int8 if self.int8 is not None else self.model

    @property
    def hidden_size(self) -> int:
        """The width of the model's hidden states and input embeddings."""
        return int(self.model.config.get_text_config().hidden_size)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embed token ids exactly as the model does for ``input_ids``.

        Any scaling the model applies inside its embedding module (Gemma 3
        multiplies by ``sqrt(hidden_size)``) is included, so the result can be
        passed as ``inputs_embeds`` in place of ``input_ids``.

        Args:
            ids: token ids, ``[batch, seq]`` (any shape works).

        Returns:
            Embeddings, ``[batch, seq, hidden_size]``, in the model's dtype.
        """
        return self.model.get_input_embeddings()(ids)

    @functools.cached_property
    def embed_norm(self) -> float:
        """Mean L2 norm of the input embedding of every row of the vocabulary.

        Computed once (in chunks, in float32, without grad) over all rows of
        the embedding matrix, after any scaling the embedding module applies.
        Injected vectors should be on this scale.
        """
        layer = self.model.get_input_embeddings()
        vocab = int(layer.weight.shape[0])
        device = layer.weight.device
        total = 0.0
        with torch.no_grad():
            for start in range(0, vocab, _EMBED_NORM_CHUNK):
                ids = torch.arange(start, min(start + _EMBED_NORM_CHUNK, vocab), device=device)  # [n]
                vectors = layer(ids).float()  # [n, d]
                total += float(vectors.norm(dim=-1).sum())
        return total / vocab

    @property
    def eos_token_ids(self) -> list[int]:
        """Token ids that end generation: the generation config's, then the tokenizer's."""
        config_ids = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if config_ids is None:
            config_ids = []
        elif isinstance(config_ids, int):
            config_ids = [config_ids]
        ids: list[int] = []
        for token_id in [*config_ids, self.tokenizer.eos_token_id]:
            if token_id is not None and int(token_id) not in ids:
                ids.append(int(token_id))
        return ids
