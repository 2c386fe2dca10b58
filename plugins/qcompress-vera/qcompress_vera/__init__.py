"""``vera``: PEFT's VeRA as a qcompress method, living entirely in this plugin.

VeRA (Kopiczko et al., ICLR 2024) freezes one pair of random projections shared by every adapted
layer and trains only two scaling vectors per layer, so its trainable count is tiny, like QPA's:
the classical baseline a quantum generator has to beat at equal parameters. Its hyper-parameters
are its own (``method_config`` / ``--set``), validated by :class:`VeraOptions` through qcompress's
registry; the shared ``adapter`` section gives the targets, and ``adapter.rank`` the LoRA budget it
is counted against. Everything but the VeRA config (seeded attach, counts, collapse by PEFT's merge)
is qcompress's :class:`~qcompress.methods.peft_tuner.PeftTunerMethod`, so export, ONNX and
evaluation need nothing new.
"""

from __future__ import annotations

from typing import Any

from peft import VeraConfig
from pydantic import Field

from qcompress.config import MAX_SEED, StrictModel
from qcompress.methods.peft_tuner import PeftTunerMethod, TunerTargets
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
