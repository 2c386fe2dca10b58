"""``vera``: PEFT's VeRA as a qcompress method, living entirely in this plugin.

VeRA (Kopiczko et al., ICLR 2024) freezes one pair of random projections shared by every adapted
layer and trains only two scaling vectors per layer, so its trainable count is tiny, like QPA's:
the classical baseline a quantum generator has to beat at equal parameters. Its hyper-parameters
are its own (``method_config`` / ``--set``), validated by :class:`VeraOptions` through qcompress's
registry; the shared ``adapter`` section gives the targets, and ``adapter.rank`` the LoRA budget it
is counted against. Everything but the VeRA config (seeded attach, counts, collapse by PEFT's merge)
is qcompress's :class:`~qcompress.methods.peft_tuner.PeftTunerMethod`, so export, ONNX and
evaluation need nothing new.

``qpa-vera`` generates what VeRA trains: every layer's vectors d and b become views of one QPA
generator's output (qcompress's ``GeneratedTensors``, as ``qpa-lora`` does for LoRA's A and B), so
the circuit angles and the mapping MLP are trained and VeRA's frozen random projections do the rest.
It asks whether a generator can stand on VeRA's frozen ~0.3 M numbers the way VeRA's own 38,400
vectors do (docs/RESEARCH.md). It starts exactly where VeRA starts (b = 0, d = ``d_initial``) and
collapses by the same PEFT merge.
"""

from __future__ import annotations

from typing import Any

import torch
from peft import PeftModel, VeraConfig
from pydantic import Field
from transformers import PreTrainedModel

from qcompress.config import MAX_SEED, StrictModel
from qcompress.methods.generated import TensorSlot
from qcompress.methods.peft_lora import ADAPTER, lora_budget
from qcompress.methods.peft_tuner import PeftTunerMethod, TunerTargets
from qcompress.methods.qpa_lora import QpaLoraAdapted
from qcompress.methods.run_config import RunConfig


class VeraOptions(StrictModel):
    """VeRA's own hyper-parameters (``--set KEY=VALUE``)."""

    projection_rank: int = Field(256, ge=1, le=4096, description="rank of the shared frozen random projections")
    d_initial: float = Field(0.1, gt=0, allow_inf_nan=False, description="initial value of the trained vector d")
    projection_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the shared random projections")


class VeraMethod(PeftTunerMethod):
    """PEFT's VeRA: trains the per-layer vectors b and d, counted against LoRA of rank r."""

    name = "vera"
    # the fair sweep (docs/RESULTS.md) chose 3.3e-2 on validation over 3e-4 ... 1e-2 (34.92 at 1e-2, 32.92 at 3.3e-2),
    # ten times the VeRA paper's 4e-3 to 1e-2 for its vectors
    default_lr = 3e-2
    config_cls = VeraOptions
    peft_config_cls = VeraConfig
    dropout_arg = "vera_dropout"

    def tuner_kwargs(self, targets: TunerTargets, options: VeraOptions, config: RunConfig) -> dict[str, Any]:
        return {
            "r": options.projection_rank, "d_initial": options.d_initial, "projection_prng_key": options.projection_seed,
            "save_projection": True,
        }


class QpaVeraAdapted(QpaLoraAdapted):
    """VeRA's layers with their vectors generated: b (zero at start) and d (``d_initial`` plus the generated
    change) of every layer, in module order, from the generator(s) ``adapter.generator_scope`` asks for."""

    def __init__(self, peft_model: PeftModel, config: RunConfig, lora_equivalent: int):
        self.lora_equivalent = lora_equivalent
        super().__init__(peft_model, config)

    def adapter_layers(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        return [(name, module) for name, module in model.named_modules() if ADAPTER in getattr(module, "vera_lambda_d", {})]

    def layer_slots(self, name: str, layer: torch.nn.Module, config: RunConfig) -> list[TensorSlot]:
        # both always start where VeRA does, whatever adapter.zero_init says: b at 0 (so dW = 0), d at d_initial
        return [
            TensorSlot(f"{name}.lambda_d", layer.vera_lambda_d, attr=ADAPTER, zero_at_start=True, residual=True),
            TensorSlot(f"{name}.lambda_b", layer.vera_lambda_b, attr=ADAPTER, zero_at_start=True),
        ]

    def counts(self) -> dict[str, int]:
        return {**super().counts(), "lora_equivalent": self.lora_equivalent}


class QpaVeraMethod(VeraMethod):
    """VeRA whose vectors d and b come from a QPA generator (``--n-mlp``, ``--config``'s ``qpa`` section)."""

    name = "qpa-vera"
    default_lr = 3e-3  # qpa-lora's; the fair sweep tunes it on validation like every other rate
    state_file = "generator.safetensors"

    def attach(self, model: PreTrainedModel, config: RunConfig) -> QpaVeraAdapted:
        budget = lora_budget(model, config)  # before the tuner wraps the model's layers
        return QpaVeraAdapted(self.peft_model(model, config), config, budget)
