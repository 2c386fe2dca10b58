"""TinyLoRA's own hyper-parameters (``method_config:`` / ``--set KEY=VALUE``)."""

from __future__ import annotations

from pydantic import Field

from qcompress.config import MAX_SEED, StrictModel


class TinyLoraOptions(StrictModel):
    """The frozen SVD rank, the trained vector and how far adapted layers share it."""

    rank: int = Field(
        2, ge=1, le=4096,
        description="rank r of each layer's frozen truncated SVD, so ΔW = U R Vᵀ with R r x r (the paper's 2; "
        "clamped to the layer's smaller width)",
    )
    u: int = Field(64, ge=1, le=65536, description="length of each trained vector v, R = Σ v_i P_i (PEFT's 64)")
    weight_tying: float = Field(
        0.0, ge=0.0, le=1.0, description="how far adapted layers share one v: 0 each its own, 1 all share one"
    )
    projection_seed: int = Field(42, ge=0, le=MAX_SEED, description="seed of the fixed random projections P_i")
