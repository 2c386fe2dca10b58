"""``prefix`` / ``qpa-prefix``: prefix tuning (PEFT's), classical and generated.

PEFT's prefix tuning (no reparametrisation MLP) trains ``adapter.prefix_tokens`` virtual tokens
of keys and values for every attention layer: one (P, layers * 2 * kv_heads * head_dim) tensor,
the prompt encoder's embedding. ``qpa-prefix`` generates that tensor from a QPA generator through
the same mechanism as ``qpa-lora`` (the embedding becomes a view of the generator output). Both
start from an all-zero prefix (see :func:`attach_peft_prefix`). A
prefix cannot be merged into weights: collapse returns the base model with the prefix installed
as constant past keys/values (:mod:`qcompress.methods.prefix.deploy`), which the ONNX export bakes
into the graph; its :class:`~qcompress.methods.base.Collapsed` asks the safetensors export to write
the prefix as a PEFT adapter next to the base weights.
"""

from __future__ import annotations


import torch
from peft import PeftModel, PrefixTuningConfig, get_peft_model
from transformers import PreTrainedModel

from qcompress.methods.base import Collapsed, Method
from qcompress.methods.generated import TensorSlot
from qcompress.methods.lora import PeftAdapted
from qcompress.methods.peft_lora import ADAPTER, lora_budget
from qcompress.methods.prefix.deploy import ConstantPrefix
from qcompress.methods.qpa_lora import QpaLoraAdapted
from qcompress.models import cache_geometry
from qcompress.methods.run_config import RunConfig


def attach_peft_prefix(model: PreTrainedModel, config: RunConfig) -> PeftModel:
    """Wrap ``model`` with PEFT prefix tuning (base frozen), the prefix starting at zero.

    PEFT draws the prefix from N(0, 1): keys and values far larger than a real model's, so step 0
    is far from the base model (on SmolLM2: training loss 4.5 after 50 steps, 3.7 with a zero
    start). All-zero keys and values give every prefix position attention logit 0 and nothing to
    add: the P positions only dilute attention (held-out perplexity 41.8 -> 53.6 at step 0 with
    P = 16), and the values get gradients from the first step."""
    prefix_config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.adapter.prefix_tokens)
    peft_model = get_peft_model(model, prefix_config)
    with torch.no_grad():
        prefix_embedding(peft_model).weight.zero_()
    return peft_model


def prefix_embedding(peft_model: PeftModel) -> torch.nn.Embedding:
    return peft_model.prompt_encoder[ADAPTER].embedding


def move_prefix_model(peft_model: PeftModel, device: torch.device) -> None:
    """``peft_model.to(device)`` plus PEFT's virtual-token indices, a plain dict of tensors that
    ``.to()`` does not reach: left on the CPU they are copied to the device in every forward pass."""
    peft_model.to(device)
    for adapter, tokens in peft_model.prompt_tokens.items():
        peft_model.prompt_tokens[adapter] = tokens.to(device)


def constant_prefix(peft_model: PeftModel) -> Collapsed:
    """The base model with the (evaluated) prefix installed as constant past keys/values; the
    safetensors export also writes the prefix as a PEFT adapter (``model/prefix/``)."""
    base = peft_model.get_base_model()
    layers, kv_heads, _ = cache_geometry(base)
    peft_config = peft_model.peft_config[ADAPTER].to_dict()
    prefix = ConstantPrefix(prefix_embedding(peft_model).weight, peft_config, layers, kv_heads)
    prefix.install(base)
    base.eval()
    return Collapsed(base, extra_files={"safetensors": lambda model_dir: prefix.save_as_peft_adapter(base, model_dir)})


class PrefixAdapted(PeftAdapted):
    """PEFT prefix tuning: the prefix tensor is trained directly; compared against LoRA of rank r."""

    def __init__(self, peft_model: PeftModel, config: RunConfig):
        super().__init__(peft_model)
        self.lora = lora_budget(peft_model.get_base_model(), config)

    def counts(self) -> dict[str, int]:
        n = prefix_embedding(self.model).weight.numel()
        return {"trainable": n, "adapter_weights": n, "lora_equivalent": self.lora,
                "prefix_tokens": self.model.peft_config[ADAPTER].num_virtual_tokens}

    def to(self, device: torch.device) -> None:
        move_prefix_model(self.model, device)

    def collapse(self) -> Collapsed:
        return constant_prefix(self.model)


class QpaPrefixAdapted(QpaLoraAdapted):
    """The whole prefix tensor generated; collapse evaluates it once and installs it as a constant."""

    def __init__(self, peft_model: PeftModel, config: RunConfig):
        self.lora = lora_budget(peft_model.get_base_model(), config)
        super().__init__(peft_model, config)

    def adapter_layers(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        return [("prefix", prefix_embedding(model))]

    def layer_slots(self, name: str, layer: torch.nn.Module, config: RunConfig) -> list[TensorSlot]:
        # zero at start, like the classical prefix (see attach_peft_prefix), whatever zero_init says
        return [TensorSlot(f"{name}.embedding", layer, zero_at_start=True)]

    def counts(self) -> dict[str, int]:
        return {**super().counts(), "lora_equivalent": self.lora,
                "prefix_tokens": self.model.peft_config[ADAPTER].num_virtual_tokens}

    def to(self, device: torch.device) -> None:
        move_prefix_model(self.model, device)

    def collapse(self) -> Collapsed:
        self.generated.release()
        return constant_prefix(self.model)


class PrefixMethod(Method):
    name = "prefix"
    default_lr = 1e-2  # PEFT's prefix-tuning examples; the prefix is a free tensor, not a low-rank update

    def attach(self, model: PreTrainedModel, config: RunConfig) -> PrefixAdapted:
        return PrefixAdapted(attach_peft_prefix(model, config), config)


class QpaPrefixMethod(Method):
    name = "qpa-prefix"
    default_lr = 3e-3
    state_file = "generator.safetensors"

    def attach(self, model: PreTrainedModel, config: RunConfig) -> QpaPrefixAdapted:
        return QpaPrefixAdapted(attach_peft_prefix(model, config), config)
