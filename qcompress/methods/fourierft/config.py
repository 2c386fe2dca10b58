"""FourierFT's own hyper-parameters (``method_config:`` / ``--set KEY=VALUE``)."""

from __future__ import annotations

from pydantic import Field

from qcompress.config import MAX_SEED, StrictModel


class FourierFTOptions(StrictModel):
    """How many spectral coefficients each adapted layer trains, and how their ΔW is scaled."""

    n_frequency: int = Field(
        1700, ge=1, le=2**31 - 1,
        description="spectral coefficients trained per adapted layer, at most its fan_in x fan_out; "
        "1700 puts q_proj+v_proj of SmolLM2-135M at ~100k trainable, near qpa-lora",
    )
    scaling: float = Field(
        300.0, gt=0, allow_inf_nan=False,
        description="scale of the inverse-DFT ΔW, like LoRA's alpha; the paper's value for LLaMA models "
        "(PEFT's default 150 is its RoBERTa value)",
    )
    frequency_seed: int = Field(
        777, ge=0, le=MAX_SEED, description="seed of the random spectral positions (PEFT's random_loc_seed)"
    )
    zero_init: bool = Field(
        False, description="start at ΔW = 0; default: the paper's Gaussian spectrum, a small ΔW already at step 0"
    )
