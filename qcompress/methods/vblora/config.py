"""VB-LoRA's own hyper-parameters (``method_config:`` / ``--set KEY=VALUE``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from qcompress.config import StrictModel


class VBLoraOptions(StrictModel):
    """The shared vector bank and how each LoRA sub-vector mixes it."""

    rank: int = Field(4, ge=1, le=4096, description="rank of the composed A and B (the paper's 4); --rank stays the LoRA budget")
    num_vectors: int = Field(
        72, ge=1, le=65536,
        description="vectors in the shared bank; 72 puts q_proj+v_proj of SmolLM2-135M at ~100k trainable "
        "(the per-layer logits, rank x tiles x num_vectors, are most of it)",
    )
    vector_length: int | None = Field(
        None, ge=1, le=65536,
        description="length of each bank vector, dividing every adapted layer's fan-in and fan-out; "
        "default: the longest such length up to 256",
    )
    topk: int = Field(2, ge=1, description="bank vectors mixed into each sub-vector (the paper's 2)")
    init_bank_bound: float = Field(
        0.02, gt=0, allow_inf_nan=False, description="the bank starts uniform in [-bound, bound] (PEFT's default)"
    )
    init_logits_std: float = Field(
        0.1, gt=0, allow_inf_nan=False, description="standard deviation of the initial logits (PEFT's default)"
    )

    @model_validator(mode="after")
    def _topk_fits_the_bank(self) -> "VBLoraOptions":
        if self.topk > self.num_vectors:
            raise ValueError(f"topk {self.topk} exceeds num_vectors {self.num_vectors}")
        return self
