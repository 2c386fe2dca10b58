"""``vblora``: every LoRA A and B is cut into sub-vectors of one length, and each sub-vector is a
softmax-weighted mix of the top-k vectors of one bank shared by all adapted layers; the bank and the
per-sub-vector logits are trained. ΔW = BA is dense, so PEFT merges it on ``nn.Linear`` and ``Conv1D``."""

from __future__ import annotations

from math import gcd
from typing import Any

from peft import VBLoRAConfig

from qcompress.errors import InputError
from qcompress.methods.peft_tuner import PeftTunerMethod, TunerTargets
from qcompress.methods.run_config import RunConfig
from qcompress.methods.vblora.config import VBLoraOptions

#: the longest bank vector chosen by default (PEFT's and the paper's length)
MAX_DEFAULT_LENGTH = 256


def vector_length(targets: TunerTargets, asked: int | None) -> int:
    """``asked``, checked to divide every fan-in and fan-out, or the longest such length up to 256."""
    common = gcd(*(width for shape in targets.shapes.values() for width in shape))
    if asked is None:
        return max(n for n in range(1, min(common, MAX_DEFAULT_LENGTH) + 1) if common % n == 0)
    if common % asked:
        raise InputError(
            f"vblora vector_length {asked} does not divide every adapted layer's width (their common divisor is "
            f"{common}): --set vector_length to a divisor of {common}, or leave it unset"
        )
    return asked


class VBLoraMethod(PeftTunerMethod):
    name = "vblora"
    # PEFT's own Llama-3.2-3B benchmark (method_comparison, MetaMathQA) trains it at 5e-4; not tuned here
    default_lr = 5e-4
    config_cls = VBLoraOptions
    peft_config_cls = VBLoRAConfig
    dropout_arg = "vblora_dropout"

    def tuner_kwargs(self, targets: TunerTargets, options: VBLoraOptions, config: RunConfig) -> dict[str, Any]:
        return {
            "r": options.rank, "num_vectors": options.num_vectors, "topk": options.topk,
            "vector_length": vector_length(targets, options.vector_length),
            "init_vector_bank_bound": options.init_bank_bound, "init_logits_std": options.init_logits_std,
        }
