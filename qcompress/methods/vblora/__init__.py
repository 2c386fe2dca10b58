"""``vblora``: PEFT's VB-LoRA (Li et al., NeurIPS 2024), one folder as PEFT keeps one per tuner.

* :mod:`.config`: its own options (:class:`VBLoraOptions`, ``--set KEY=VALUE``);
* :mod:`.method`: :class:`VBLoraMethod`, the PEFT config built from them.
"""

from __future__ import annotations

from qcompress.methods.vblora.method import VBLoraMethod

__all__ = ["VBLoraMethod"]
