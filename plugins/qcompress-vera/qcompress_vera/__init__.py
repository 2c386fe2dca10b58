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

from qcompress.config import MAX_SEED, StrictModel
from qcompress.errors import InputError
from qcompress.methods.generated import TensorSlot
from qcompress.methods.peft_lora import ADAPTER
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
        # refused rather than ignored: VeRA's vectors are no rank-one factors, and b must start at 0 for dW = 0
        if config.qpa.layout != "flat":
            raise InputError(f"qpa-vera generates VeRA's vectors, which have no rank-one factors to lay out: drop layout: {config.qpa.layout}")
        if not config.adapter.zero_init:
            raise InputError("qpa-vera always starts where VeRA does (b = 0, so dW = 0): drop --no-zero-init / adapter.zero_init: false")
        self._lora_equivalent = lora_equivalent
        super().__init__(peft_model, config)

    def adapter_layers(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        return [(name, module) for name, module in model.named_modules() if ADAPTER in getattr(module, "vera_lambda_d", {})]

    def layer_slots(self, name: str, layer: torch.nn.Module, config: RunConfig) -> list[TensorSlot]:
        return [
            TensorSlot(f"{name}.lambda_d", layer.vera_lambda_d, attr=ADAPTER, zero_at_start=True, residual=True),
            TensorSlot(f"{name}.lambda_b", layer.vera_lambda_b, attr=ADAPTER, zero_at_start=True),
        ]

    def lora_equivalent(self) -> int:
        return self._lora_equivalent


class QpaVeraMethod(VeraMethod):
    """VeRA whose vectors d and b come from a QPA generator (``--n-mlp``, ``--config``'s ``qpa`` section)."""

    name = "qpa-vera"
    default_lr = 3e-3  # qpa-lora's; the fair sweep tunes it on validation like every other rate
    state_file = "generator.safetensors"

    def adapted(self, peft_model: PeftModel, config: RunConfig, lora_equivalent: int) -> QpaVeraAdapted:
        return QpaVeraAdapted(peft_model, config, lora_equivalent)
