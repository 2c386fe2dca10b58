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

import hashlib
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


#: the trainable state's record of the frozen projections the generator was trained on
PROJECTIONS_KEY = "vera_projections_sha256"


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
    change) of every layer, in module order, from the generator(s) ``adapter.generator_scope`` asks for.

    VeRA's vectors have no rank axis, so ``layout: factors`` gives each vector whole chunks of its own
    (a chunk never straddles two vectors) instead of one chunk per factor.

    The frozen projections are not saved with the generator: PEFT rebuilds them from
    ``projection_seed``. The state carries their sha256 instead, and a state trained on other
    projections (another seed, or a PEFT whose initialisation changed) is refused on load rather
    than silently paired with these."""

    def __init__(self, peft_model: PeftModel, config: RunConfig, lora_equivalent: int):
        self._lora_equivalent = lora_equivalent
        self._projections = projections_sha256(peft_model)
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

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return super().trainable_state() | {PROJECTIONS_KEY: self._projections}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        saved = state.get(PROJECTIONS_KEY)
        if saved is None:
            raise InputError("the saved qpa-vera generator has no record of the frozen projections it was trained on "
                             f"({PROJECTIONS_KEY}; an earlier qcompress-vera wrote it): re-run qcompress fit")
        if not torch.equal(saved, self._projections):
            raise InputError(
                "the saved qpa-vera generator was trained on other frozen projections than this run's "
                "(another projection_seed or rank, or a PEFT version that initialises them differently): "
                "use the run's own config and the PEFT it was trained with, or re-run qcompress fit"
            )
        super().load_trainable_state({key: value for key, value in state.items() if key != PROJECTIONS_KEY})


def projections_sha256(peft_model: PeftModel) -> torch.Tensor:
    """sha256 of VeRA's frozen projections (A then B, float32 bytes) as 32 uint8, built where PEFT builds them (CPU)."""
    digest = hashlib.sha256()
    for projections in (peft_model.base_model.vera_A, peft_model.base_model.vera_B):
        digest.update(projections[ADAPTER].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8)


class QpaVeraMethod(VeraMethod):
    """VeRA whose vectors d and b come from a QPA generator (``--n-mlp``, ``--config``'s ``qpa`` section)."""

    name = "qpa-vera"
    default_lr = 3e-3  # qpa-lora's; the fair sweep tunes it on validation like every other rate
    state_file = "generator.safetensors"

    def tuner_kwargs(self, targets: TunerTargets, options: VeraOptions, config: RunConfig) -> dict[str, Any]:
        # checked here, before PEFT rewrites the caller's model: b must start at 0 for dW = 0
        if not config.adapter.zero_init:
            raise InputError("qpa-vera always starts where VeRA does (b = 0, so dW = 0): drop --no-zero-init / adapter.zero_init: false")
        return super().tuner_kwargs(targets, options, config)

    def adapted(self, peft_model: PeftModel, config: RunConfig, lora_equivalent: int) -> QpaVeraAdapted:
        return QpaVeraAdapted(peft_model, config, lora_equivalent)
