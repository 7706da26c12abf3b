"""A trainable LoRA adapter on the reasoning LLM (``adapter`` in the run config), with the ``peft`` library.

LoRA layers are injected into the loaded LLM in place (``peft.inject_adapter_in_model``),
so the model keeps its type and every code path that runs it (the decoding
loop, teacher forcing, the int8 twin) runs the adapter too. Its weights start
as peft initialises them (``B = 0``: the LLM's outputs are unchanged until it
is trained), are trained by ``latentreason train`` with any other trainable
part, and are saved under the ``adapter`` prefix of the safetensors checkpoints.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import torch
from torch import nn

from latentreason.config import AdapterConfig
from latentreason.errors import LatentReasonError

INSTALL = "pip install 'latentreason[lora]'"


def linear_names(model: nn.Module) -> list[str]:
    """The distinct short names of the model's linear layers (what ``target_modules`` may name)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)})


def adapter_problems(model: nn.Module, config: AdapterConfig) -> list[str]:
    """Why ``config`` cannot adapt this model (empty if it can): a missing peft, unknown target modules."""
    problems = []
    if importlib.util.find_spec("peft") is None:
        problems.append(f"adapter: LoRA needs the peft package: {INSTALL}")
    known = linear_names(model)
    unknown = [name for name in config.target_modules if name not in known]
    if unknown:
        problems.append(
            f"adapter.target_modules: {', '.join(map(repr, unknown))} name no linear layer of this LLM; "
            f"its linear layers are: {', '.join(known)}"
        )
    return problems


class Adapter(nn.Module):
    """The LoRA parameters injected into an LLM, gathered as one module for training and checkpoints.

    The parameters are the LLM's own (shared): training this module trains
    the adapter inside the LLM, and loading its state dict loads the adapter.
    ``train()`` switches the LoRA dropout; the rest of the LLM stays in eval mode.

    Args:
        model: the LLM, into which the LoRA layers are injected.
        config: rank, alpha, dropout and target modules.

    Raises:
        LatentReasonError: peft is missing or a target module does not exist.
    """

    def __init__(self, model: nn.Module, config: AdapterConfig) -> None:
        super().__init__()
        problems = adapter_problems(model, config)
        if problems:
            raise LatentReasonError("; ".join(problems))
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.lora import LoraLayer

        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
        )
        with torch.random.fork_rng():  # loading leaves torch's generator where it was; reset() starts the weights
            inject_adapter_in_model(lora, model)
        self.config = config
        self._layers = [m for m in model.modules() if isinstance(m, LoraLayer)]  # not submodules of this one
        self.weights = nn.ParameterDict(
            {name.replace(".", "__"): p for name, p in model.named_parameters() if "lora_" in name}
        )
        for p in self.weights.values():
            p.requires_grad_(True)
        self.train(False)

    def layers(self) -> Iterator[nn.Module]:
        """The LLM's LoRA layers."""
        return iter(self._layers)

    def train(self, mode: bool = True) -> Adapter:
        """Switch the LoRA layers' dropout (the LLM itself stays in eval mode)."""
        super().train(mode)
        for layer in self._layers:
            for dropout in layer.lora_dropout.values():
                dropout.train(mode)
        return self

    def reset(self) -> None:
        """Back to peft's initialisation (``B = 0``: the LLM computes exactly what it computed without the adapter)."""
        self.unmerge()
        for layer in self._layers:
            layer.reset_lora_parameters("default", True)

    def merge(self) -> None:
        """Fold the adapter into the LLM's weights (faster decoding; :meth:`unmerge` undoes it)."""
        for layer in self._layers:
            if not layer.merged:
                layer.merge()

    def unmerge(self) -> None:
        """Take a merged adapter out of the LLM's weights again."""
        for layer in self._layers:
            if layer.merged:
                layer.unmerge()
