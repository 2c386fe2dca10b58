"""QTHA's own hyper-parameters: its ``method_config`` (YAML ``method_config:``, ``--qtha-*`` flags or ``--set KEY=VALUE``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qcompress.config import StrictModel


class QthaConfig(StrictModel):
    """Shape of the QTHA adapter beside each target layer; the rank r (= qubits) is ``adapter.rank``."""

    inner: int = Field(256, ge=1, description="width of the tensor-train maps' inner side (TT_A output, TT_B input)")
    cores: int = Field(4, ge=1, le=8, description="tensor-train cores per map")
    bond: int = Field(8, ge=1, description="tensor-train bond dimension")
    layers: int | None = Field(None, ge=1, description="circuit layers L; default r")
    simulator: Literal["statevector", "quimb"] = Field(
        "statevector", description="per-token circuit simulation: plain-torch state vector (fast) or the quimb backend"
    )
    recompute: Literal["auto", "always", "never"] = Field(
        "auto", description="circuit intermediates for backward: kept while they fit half of free memory (auto), "
        "always recomputed (least memory), or always kept (fastest); the same gradients either way"
    )
