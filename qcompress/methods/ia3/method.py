"""``ia3``: one trained vector per adapted layer rescales its output (or, for the ``feedforward`` ones,
its input), starting at 1. Its size is fixed by the layers' widths, far below LoRA's by design.
A rescaling merges into the weight (and bias) exactly; PEFT does so on ``nn.Linear`` and ``Conv1D``."""

from __future__ import annotations

from typing import Any

from peft import IA3Config

from qcompress.errors import InputError
from qcompress.methods.ia3.config import IA3Options
from qcompress.methods.peft_tuner import PeftTunerMethod, TunerTargets
from qcompress.methods.run_config import RunConfig


class IA3Method(PeftTunerMethod):
    name = "ia3"
    # PEFT's own Llama-3.2-3B benchmark (method_comparison, MetaMathQA) trains it at 5e-3; not tuned here
    default_lr = 5e-3
    config_cls = IA3Options
    peft_config_cls = IA3Config

    def tuner_kwargs(self, targets: TunerTargets, options: IA3Options, config: RunConfig) -> dict[str, Any]:
        for suffix in options.feedforward:
            if not targets.named([suffix]):
                raise InputError(
                    f"ia3 feedforward {suffix!r} is not an adapted layer: add it to --targets, or drop it from feedforward"
                )
        return {"feedforward_modules": targets.named(options.feedforward)}
