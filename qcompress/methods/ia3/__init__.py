"""``ia3``: PEFT's (IA)³ (Liu et al., NeurIPS 2022), one folder as PEFT keeps one per tuner.

* :mod:`.config`: its own options (:class:`IA3Options`, ``--set KEY=VALUE``);
* :mod:`.method`: :class:`IA3Method`, the PEFT config built from them.
"""

from __future__ import annotations

from qcompress.methods.ia3.method import IA3Method

__all__ = ["IA3Method"]
