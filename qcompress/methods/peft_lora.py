"""PEFT's LoRA layers, attached the same way for the classical and the generated method.

Both ``lora`` and ``qpa-lora`` use PEFT's own LoRA layers, forward and merge code; they differ
only in where the ``lora_A``/``lora_B`` tensors come from (stored parameters vs a generator).
"""

from __future__ import annotations


import copy

import torch
from peft import LoraConfig, PeftModel, PeftType, get_peft_model, get_peft_model_state_dict
from transformers import PreTrainedModel

from qcompress.methods.base import Collapsed, PeftAdapter
from qcompress.models import is_conv1d_model, resolve_target_modules
from qcompress.methods.run_config import RunConfig


ADAPTER = "default"


def attach_peft_lora(model: PreTrainedModel, config: RunConfig, use_dora: bool = False) -> PeftModel:
    """Wrap ``model`` with PEFT LoRA (base frozen; DoRA's weight decomposition if ``use_dora``), seeded init."""
    targets = resolve_target_modules(model, config.adapter.targets)
    lora_config = LoraConfig(
        r=config.adapter.rank,
        lora_alpha=config.adapter.effective_alpha,
        lora_dropout=config.adapter.dropout,
        target_modules=targets,
        fan_in_fan_out=is_conv1d_model(model, targets),
        bias="none",
        task_type="CAUSAL_LM",
        use_dora=use_dora,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return get_peft_model(model, lora_config)


def lora_layers(peft_model: PeftModel) -> list[tuple[str, torch.nn.Module]]:
    """(name, LoRA layer) pairs in module order: the fixed order generated weights are laid out in."""
    return [
        (name, module)
        for name, module in peft_model.named_modules()
        if hasattr(module, "lora_A") and ADAPTER in getattr(module, "lora_A", {})
    ]


def dense_lora_weights(peft_model: PeftModel) -> int:
    """How many numbers LoRA stores for these layers: sum of r * (fan_in + fan_out)."""
    return sum(
        layer.lora_A[ADAPTER].weight.numel() + layer.lora_B[ADAPTER].weight.numel()
        for _, layer in lora_layers(peft_model)
    )


def lora_budget(model: PreTrainedModel, config: RunConfig) -> int:
    """What LoRA of rank r on the configured targets stores: the budget non-LoRA methods are compared against."""
    targets = resolve_target_modules(model, config.adapter.targets)
    modules = [module for name, module in model.named_modules() if any(name == t or name.endswith("." + t) for t in targets)]
    return sum(config.adapter.rank * sum(module.weight.shape) for module in modules)


def merge(peft_model: PeftModel) -> PreTrainedModel:
    """PEFT's merge (Conv1D and Linear handled by PEFT) into plain dense weights, adapter removed."""
    merged = peft_model.merge_and_unload(progressbar=False, safe_merge=True)
    merged.eval()
    return merged


def peft_lora_adapter(peft_model: PeftModel) -> PeftAdapter:
    """What ``--format peft`` writes, read off the unmerged model (call it before :func:`merge`)."""
    prefix = "base_model.model."  # PeftModel -> LoraModel -> the plain model
    return PeftAdapter(
        config=copy.deepcopy(peft_model.peft_config[ADAPTER]),
        state={k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model, adapter_name=ADAPTER).items()},
        base_weights={
            name.removeprefix(prefix) + ".weight": layer.get_base_layer().weight.detach().clone()
            for name, layer in lora_layers(peft_model)
        },
    )


def collapse_peft(peft_model: PeftModel) -> Collapsed:
    """PEFT's merge; a LoRA/DoRA adapter is kept beside it for ``--format peft`` (other PEFT tuners,
    e.g. FourierFT or VeRA, are no LoRA a LoRA server can load, so they collapse to the merge only)."""
    is_lora = peft_model.peft_config[ADAPTER].peft_type == PeftType.LORA
    adapter = peft_lora_adapter(peft_model) if is_lora else None
    return Collapsed(merge(peft_model), peft_adapter=adapter)
