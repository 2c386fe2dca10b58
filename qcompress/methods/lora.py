"""``lora``: PEFT's classical LoRA, the baseline every generated method is measured against."""

from __future__ import annotations


import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from peft import PeftModel
from transformers import PreTrainedModel

from qcompress.methods.base import AdaptedModel, Collapsed, Method, check_state_fits
from qcompress.methods.peft_lora import attach_peft_lora, collapse_peft, dense_lora_weights
from qcompress.methods.run_config import RunConfig


class PeftAdapted(AdaptedModel):
    """A PEFT model whose trainable tensors are PEFT's own (LoRA, DoRA, prefix): saved and loaded by PEFT."""

    def __init__(self, peft_model: PeftModel):
        self.model = peft_model

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(self.model).items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        check_state_fits(state, get_peft_model_state_dict(self.model), "PEFT adapter")
        set_peft_model_state_dict(self.model, state)

    def counts(self) -> dict[str, int]:
        n = sum(p.numel() for p in self.trainable_parameters())
        return {"trainable": n, "adapter_weights": dense_lora_weights(self.model), "lora_equivalent": n}

    def collapse(self) -> Collapsed:
        return collapse_peft(self.model)


class LoraMethod(Method):
    name = "lora"
    # Chosen by the fair sweep (docs/RESULTS.md): r = 8 on SmolLM2 + Austen at 100 steps, validation perplexity
    # 34.94 / 32.94 / 32.12 / 33.11 at 3e-4 / 1e-3 / 3e-3 / 1e-2. The old 2e-4 was PEFT's habit, never tuned here.
    default_lr = 3e-3

    def attach(self, model: PreTrainedModel, config: RunConfig) -> PeftAdapted:
        return PeftAdapted(attach_peft_lora(model, config))
