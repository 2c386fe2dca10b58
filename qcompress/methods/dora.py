"""``dora`` / ``qpa-dora``: weight-decomposed LoRA (PEFT's ``use_dora``), classical and generated.

DoRA adds one magnitude vector per adapted layer (``lora_magnitude_vector``, initialised to the
column norms of the base weight) on top of LoRA's A and B. ``qpa-dora`` generates A and B like
``qpa-lora``; the magnitudes are either generated too (``adapter.dora_magnitude: generated``, as
a residual on their initial norms so training starts from the base model) or trained directly
(``trained``), which costs one number per output feature per layer. Both merge into dense weights
with PEFT's own DoRA merge, so export is exactly LoRA's.
"""

from __future__ import annotations


import torch
from peft import PeftModel
from transformers import PreTrainedModel

from qcompress.errors import InputError
from qcompress.methods.base import Method
from qcompress.methods.generated import TensorSlot
from qcompress.methods.lora import PeftAdapted
from qcompress.methods.peft_lora import ADAPTER, attach_peft_lora, dense_lora_weights, lora_layers
from qcompress.methods.qpa_lora import QpaLoraAdapted
from qcompress.methods.run_config import RunConfig


MAGNITUDE_PREFIX = "magnitude."


def magnitude_vectors(peft_model: PeftModel) -> dict[str, torch.nn.Module]:
    """Layer name -> the DoRA magnitude module (its ``weight`` is the vector), in module order."""
    return {name: layer.lora_magnitude_vector[ADAPTER] for name, layer in lora_layers(peft_model)}


def magnitude_count(peft_model: PeftModel) -> int:
    return sum(module.weight.numel() for module in magnitude_vectors(peft_model).values())


class DoraAdapted(PeftAdapted):
    """PEFT DoRA: trains A, B and the magnitudes; saving, loading and merging are PEFT's (as for LoRA)."""

    def counts(self) -> dict[str, int]:
        counts = super().counts()
        magnitudes = magnitude_count(self.model)
        return {**counts, "adapter_weights": counts["adapter_weights"] + magnitudes,
                "lora_equivalent": dense_lora_weights(self.model), "magnitude": magnitudes}


class QpaDoraAdapted(QpaLoraAdapted):
    """A and B (and, if configured, the magnitudes) from QPA generators; trained magnitudes are plain parameters."""

    def __init__(self, peft_model: PeftModel, config: RunConfig):
        self.generate_magnitude = config.adapter.dora_magnitude == "generated"
        super().__init__(peft_model, config)
        vectors = magnitude_vectors(peft_model)
        self.trained_magnitudes = {} if self.generate_magnitude else {name: m.weight for name, m in vectors.items()}

    def layer_slots(self, name: str, layer: torch.nn.Module, config: RunConfig) -> list[TensorSlot]:
        slots = super().layer_slots(name, layer, config)
        if self.generate_magnitude:
            # always zero at start: the magnitudes must begin at the base weight's norms, whatever zero_init says
            slots.append(TensorSlot(f"{name}.magnitude", layer.lora_magnitude_vector[ADAPTER], zero_at_start=True, residual=True))
        return slots

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return super().trainable_parameters() + list(self.trained_magnitudes.values())

    def trainable_state(self) -> dict[str, torch.Tensor]:
        magnitudes = {MAGNITUDE_PREFIX + name: w.detach().contiguous() for name, w in self.trained_magnitudes.items()}
        return {**super().trainable_state(), **magnitudes}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        magnitudes = {k[len(MAGNITUDE_PREFIX):]: v for k, v in state.items() if k.startswith(MAGNITUDE_PREFIX)}
        if set(magnitudes) != set(self.trained_magnitudes) or any(
            magnitudes[k].shape != w.shape for k, w in self.trained_magnitudes.items()
        ):
            raise InputError(
                "saved DoRA magnitudes do not fit this configuration (adapter.dora_magnitude or layers differ): "
                "re-run qcompress fit"
            )
        with torch.no_grad():
            for name, weight in self.trained_magnitudes.items():
                weight.copy_(magnitudes[name])
        super().load_trainable_state({k: v for k, v in state.items() if not k.startswith(MAGNITUDE_PREFIX)})

    def counts(self) -> dict[str, int]:
        counts = super().counts()
        magnitudes = magnitude_count(self.model)
        trained = 0 if self.generate_magnitude else magnitudes
        return {**counts, "trainable": counts["trainable"] + trained,
                "adapter_weights": counts["adapter_weights"] + trained, "magnitude": magnitudes}


class DoraMethod(Method):
    name = "dora"
    default_lr = 2e-4  # PEFT's habit; not in the fair sweep yet (LoRA's own moved to 3e-3 there)

    def attach(self, model: PreTrainedModel, config: RunConfig) -> DoraAdapted:
        return DoraAdapted(attach_peft_lora(model, config, use_dora=True))


class QpaDoraMethod(Method):
    name = "qpa-dora"
    default_lr = 1e-3
    state_file = "generator.safetensors"

    def attach(self, model: PreTrainedModel, config: RunConfig) -> QpaDoraAdapted:
        return QpaDoraAdapted(attach_peft_lora(model, config, use_dora=True), config)
