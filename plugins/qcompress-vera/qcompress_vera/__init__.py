"""``vera``: PEFT's VeRA as a qcompress method, living entirely in this plugin.

VeRA (Kopiczko et al., ICLR 2024) freezes one pair of random projections shared by every adapted
layer and trains only two scaling vectors per layer, so its trainable count is tiny, like QPA's:
the classical baseline a quantum generator has to beat at equal parameters. Its hyper-parameters
are its own (``method_config`` / ``--set``), validated by :class:`VeraOptions` through qcompress's
registry; the shared ``adapter`` section gives the targets, and ``adapter.rank`` the LoRA budget it
is counted against. Collapse is PEFT's merge, so export, ONNX and evaluation need nothing new.
"""

from __future__ import annotations

import torch
from peft import PeftModel, VeraConfig, get_peft_model
from pydantic import Field
from transformers import PreTrainedModel

from qcompress.config import MAX_SEED, StrictModel
from qcompress.methods import Method
from qcompress.methods.lora import PeftAdapted
from qcompress.methods.peft_lora import lora_budget
from qcompress.methods.run_config import RunConfig
from qcompress.models import is_conv1d_model, resolve_target_modules


class VeraOptions(StrictModel):
    """VeRA's own hyper-parameters (``--set KEY=VALUE``)."""

    projection_rank: int = Field(256, ge=1, le=4096, description="rank of the shared frozen random projections")
    d_initial: float = Field(0.1, gt=0, allow_inf_nan=False, description="initial value of the trained vector d")
    projection_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the shared random projections")


class VeraAdapted(PeftAdapted):
    """PEFT's VeRA model: trains the per-layer vectors b and d, counted against LoRA of rank r."""

    def __init__(self, peft_model: PeftModel, lora_equivalent: int) -> None:
        super().__init__(peft_model)
        self.lora_equivalent = lora_equivalent

    def counts(self) -> dict[str, int]:
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return {"trainable": trainable, "adapter_weights": trainable, "lora_equivalent": self.lora_equivalent}


class VeraMethod(Method):
    name = "vera"
    default_lr = 1e-2  # the VeRA paper's range for its vectors is 4e-3 to 1e-2; not tuned here
    config_cls = VeraOptions

    def attach(self, model: PreTrainedModel, config: RunConfig) -> VeraAdapted:
        options = self.options(config.method_config)
        targets = resolve_target_modules(model, config.adapter.targets)
        vera = VeraConfig(
            r=options.projection_rank, target_modules=targets, d_initial=options.d_initial,
            projection_prng_key=options.projection_seed, save_projection=True, task_type="CAUSAL_LM",
            fan_in_fan_out=is_conv1d_model(model, targets), vera_dropout=config.adapter.dropout,
        )
        budget = lora_budget(model, config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return VeraAdapted(get_peft_model(model, vera), budget)
