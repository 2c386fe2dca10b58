"""``tinylora``: PEFT's TinyLoRA ("Learning to Reason in 13 Parameters"), one folder as PEFT keeps one per tuner.

* :mod:`.config`: its own options (:class:`TinyLoraOptions`, ``--set KEY=VALUE``);
* :mod:`.method`: :class:`TinyLoraMethod`, the PEFT config built from them.
"""

from __future__ import annotations

from qcompress.methods.tinylora.method import TinyLoraMethod

__all__ = ["TinyLoraMethod"]
