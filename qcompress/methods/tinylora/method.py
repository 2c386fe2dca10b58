"""``tinylora``: each adapted layer keeps its weight's top-r singular vectors frozen and trains only a
vector v, mapped to the r x r core R by fixed random projections (v starts at 0, so ΔW does). Tens of
parameters per layer by design. ΔW = U R Vᵀ is dense; PEFT merges it on ``nn.Linear`` and ``Conv1D``."""

from __future__ import annotations

from typing import Any

from peft import TinyLoraConfig

from qcompress.methods.peft_tuner import PeftTunerMethod, TunerTargets
from qcompress.methods.run_config import RunConfig
from qcompress.methods.tinylora.config import TinyLoraOptions


class TinyLoraMethod(PeftTunerMethod):
    name = "tinylora"
    # Chosen by the fair sweep (docs/RESULTS.md): validation perplexity 38.48 / 38.39 / 38.38 / 38.97 at 3e-4 / 1e-3 /
    # 3e-3 / 1e-2 on SmolLM2 + Austen at 100 steps (base 38.65: at this budget it barely moves the model at any rate)
    default_lr = 3e-3
    config_cls = TinyLoraOptions
    peft_config_cls = TinyLoraConfig
    dropout_arg = "tinylora_dropout"

    def tuner_kwargs(self, targets: TunerTargets, options: TinyLoraOptions, config: RunConfig) -> dict[str, Any]:
        return {
            "r": options.rank, "u": options.u, "weight_tying": options.weight_tying,
            "projection_seed": options.projection_seed, "save_projection": True,
        }
