"""``fourierft``: PEFT's FourierFT (Gao et al., ICML 2024), one folder as PEFT keeps one per tuner.

* :mod:`.config`: its own options (:class:`FourierFTOptions`, ``--set KEY=VALUE``);
* :mod:`.method`: :class:`FourierFTMethod`, the PEFT config built from them.
"""

from __future__ import annotations

from qcompress.methods.fourierft.method import FourierFTMethod

__all__ = ["FourierFTMethod"]
