"""What a method reads of a run's configuration, defined where the methods are.

``qcompress.training.config.FitConfig`` is the full configuration of a fit; methods see it through
:class:`RunConfig`, the part they use, so that they import nothing from the training layer above
them (training uses methods, never the reverse). The LoRA family's shared section, :class:`AdapterConfig`,
lives here for the same reason and is one section of ``FitConfig``.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import Field

from qcompress.config import StrictModel
from qcompress.generators.qpa import QPAGeneratorConfig


class AdapterConfig(StrictModel):
    """Hyper-parameters shared by the LoRA family (classical and generated)."""

    rank: int = Field(8, ge=1, le=4096, description="LoRA rank r")
    alpha: float | None = Field(None, gt=0, allow_inf_nan=False, description="LoRA alpha; default 2r as in the QPA paper")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    targets: list[str] | str | None = Field(
        None, description="module-name suffixes (list or comma-separated) or one regex; default per architecture"
    )
    zero_init: bool = Field(
        True, description="generated methods: subtract the initial generated B so training starts at dW = 0"
    )
    generator_scope: Literal["shared", "layer"] = Field(
        "shared", description="one generator for all adapted layers, or one per layer"
    )
    prefix_tokens: int = Field(16, ge=1, le=1024, description="prefix / qpa-prefix: virtual tokens of keys and values per layer")
    dora_magnitude: Literal["generated", "trained"] = Field(
        "generated", description="qpa-dora: DoRA's magnitude vectors come from the generator, or are trained directly"
    )

    @property
    def effective_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.0 * self.rank


class RunConfig(Protocol):
    """The sections of a run's config a method reads (``FitConfig`` has them all)."""

    adapter: AdapterConfig
    qpa: QPAGeneratorConfig
    seed: int
    method_config: dict[str, Any]
