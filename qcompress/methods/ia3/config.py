"""(IA)³'s own hyper-parameters (``method_config:`` / ``--set KEY=VALUE``)."""

from __future__ import annotations

from pydantic import Field

from qcompress.config import StrictModel


class IA3Options(StrictModel):
    """Which adapted layers scale their input rather than their output."""

    feedforward: list[str] = Field(
        default_factory=list,
        description="adapted layers (name suffixes, each among --targets) whose input, not output, is scaled, "
        "as (IA)³ does for an MLP's down projection, e.g. [down_proj]",
    )
