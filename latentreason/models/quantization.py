"""int8 decoding for evaluation on the CPU (``models.quantize: int8``).

Every ``nn.Linear`` of a frozen model (the LM head included) gets an int8
twin: per-output-channel int8 weights, prepacked once for torch's own dynamic
int8 kernels (fbgemm on x86, qnnpack on ARM), which quantize each call's
activations on the fly. The twin shares every other parameter (embeddings,
norms) with the full-precision model, so it costs the int8 weights alone.

Decoding steps (one token per row, plus a decoder's inserted vectors) run
the twin; prompts are read by the full-precision model. The reason is
measured (docs/decisions.md, "Quantization"): a few prompt tokens of
Qwen2.5 carry activations hundreds of times larger than the rest, and the
per-call activation scale of dynamic int8 then rounds every other token of the
prompt to almost nothing (top-1 agreement with float32 fell to 56% when
prompts were quantized too; 97% with prompts read in float32).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from latentreason.errors import LatentReasonError

ENGINES = ("x86", "fbgemm", "qnnpack")
"""torch's quantized backends with dynamic int8 linear kernels, in order of preference."""


def int8_engine() -> str | None:
    """The quantized backend this torch build and CPU offer for dynamic int8, or None."""
    supported = torch.backends.quantized.supported_engines
    return next((engine for engine in ENGINES if engine in supported), None)


def check_int8(device: str, dtype: str) -> list[str]:
    """Why ``quantize: int8`` cannot run with this device and dtype (empty if it can).

    Args:
        device: the resolved device (``"cpu"``, ``"cuda:0"``, ...).
        dtype: the resolved weight dtype.
    """
    problems = []
    if not device.startswith("cpu"):
        problems.append(
            f"models.quantize: int8 runs on the CPU only (torch's dynamic int8 kernels), not on {device!r}; "
            "use quantize: none (with dtype bfloat16) or generation.engine: vllm on a GPU"
        )
    if dtype != "float32":
        problems.append(
            f"models.quantize: int8 needs float32 activations; set models.dtype to float32 or auto, not {dtype!r}"
        )
    if int8_engine() is None:
        problems.append(
            "models.quantize: int8 needs a torch build with a quantized backend "
            f"({', '.join(ENGINES)}); this one has {', '.join(torch.backends.quantized.supported_engines) or 'none'}"
        )
    return problems


class Int8Linear(nn.Module):
    """A frozen ``nn.Linear`` with per-output-channel int8 weights and dynamic int8 activations.

    Args:
        linear: the float linear layer to copy.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()  # (N, K)
        scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127  # (N,)
        q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (N, K)
        zero = torch.zeros_like(scale, dtype=torch.long)
        with (
            warnings.catch_warnings()
        ):  # torch 2.13 (pinned) warns that quantized tensor types will go; its kernels are what we use
            warnings.simplefilter("ignore", UserWarning)
            qweight = torch._make_per_channel_quantized_tensor(q, scale.double(), zero, 0)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.packed = torch.ops.quantized.linear_prepack(qweight, bias)
        self.out_features = linear.out_features
        self.weight_bytes = (
            q.numel() + 4 * scale.numel() + (4 * bias.numel() if bias is not None else 0)
        )  # read per call
        # x86 kernels add pairs of uint8 x int8 products in int16, which 8-bit activations can overflow;
        # 7-bit activations cannot (torch's own dynamic quantization does the same).
        self.reduce_range = torch.backends.quantized.engine in ("x86", "fbgemm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., K)`` float32 to ``(..., N)``."""
        flat = x.reshape(-1, x.shape[-1])  # (M, K)
        out = torch.ops.quantized.linear_dynamic(flat, self.packed, self.reduce_range)  # (M, N)
        return out.reshape(*x.shape[:-1], self.out_features)


def _adapter_branch(name: str) -> bool:
    """Whether a linear layer is a LoRA branch (kept in float32 and shared, so a loaded adapter updates the twin too)."""
    return ".lora_A." in f"{name}." or ".lora_B." in f"{name}."


def int8_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers are :class:`Int8Linear`; all else is shared.

    A LoRA adapter's branches stay float32 and shared with ``model``, so the
    adapter weights a checkpoint loads later reach the twin as well.

    Raises:
        LatentReasonError: the CPU backend cannot quantize this model (the
            partial copy is released first).
    """
    engine = int8_engine()
    if engine is None:
        raise LatentReasonError(
            "models.quantize: int8 needs a torch build with a quantized backend (x86, fbgemm or qnnpack)."
        )
    torch.backends.quantized.engine = engine
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    twin = None
    try:
        twin = copy.deepcopy(model, memo=shared)  # new modules, the same tensors
        for parent_name, parent in list(twin.named_modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear) and not _adapter_branch(f"{parent_name}.{name}"):
                    setattr(parent, name, Int8Linear(child))
    except (RuntimeError, NotImplementedError) as exc:
        del twin
        raise LatentReasonError(
            f"models.quantize: int8 could not quantize this model on the CPU ({exc}); use quantize: none."
        ) from exc
    return twin.eval()
