"""``fourierft``: each adapted layer trains n spectral coefficients at fixed random positions; ΔW is
their inverse 2-D DFT (real part) times ``scaling``, so the cost per layer does not grow with its size.
PEFT merges it on ``nn.Linear`` and on GPT-2's ``Conv1D``."""

from __future__ import annotations

from typing import Any

from peft import FourierFTConfig

from qcompress.errors import InputError
from qcompress.methods.fourierft.config import FourierFTOptions
from qcompress.methods.peft_tuner import PeftTunerMethod, TunerTargets
from qcompress.methods.run_config import RunConfig


class FourierFTMethod(PeftTunerMethod):
    name = "fourierft"
    # the paper trains the coefficients at rates of order 5e-2 (RoBERTa on GLUE); not tuned here, a sweep will set it
    default_lr = 5e-2
    config_cls = FourierFTOptions
    peft_config_cls = FourierFTConfig

    def tuner_kwargs(self, targets: TunerTargets, options: FourierFTOptions, config: RunConfig) -> dict[str, Any]:
        smallest = min(fan_in * fan_out for fan_in, fan_out in targets.shapes.values())
        if options.n_frequency > smallest:
            raise InputError(
                f"fourierft n_frequency {options.n_frequency} exceeds the {smallest} weights of the smallest "
                f"adapted layer: --set n_frequency={smallest} or less"
            )
        return {
            "n_frequency": options.n_frequency, "scaling": options.scaling,
            "random_loc_seed": options.frequency_seed, "init_weights": options.zero_init,
        }
