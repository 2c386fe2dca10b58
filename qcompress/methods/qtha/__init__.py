"""``qtha``: Quantum Tensor Hybrid Adaptation, one package.

* :mod:`.config`: QTHA's own hyper-parameters, its ``method_config`` (:class:`QthaConfig`);
* :mod:`.ansatz`: the per-token Cirq circuit (the ``qtha`` entry of ``qcompress.ansatze``);
* :mod:`.circuit`: that circuit as a plain-torch state vector, the form it is trained in;
* :mod:`.layer`: the trainable layer beside each target and its sibling groups;
* :mod:`.method`: :class:`QthaMethod` / :class:`QthaAdapted` (attach, state, counts, collapse);
* :mod:`.deploy` and :mod:`.compiled`: the collapsed (deployed) form the exporters trace.

The method is loaded on first use (``qcompress.methods.qtha:QthaMethod``, the entry point), so
importing the config or the ansatz does not import the method's torch modules.
"""

from __future__ import annotations

from typing import Any

__all__ = ["QthaAdapted", "QthaMethod"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from qcompress.methods.qtha import method

        return getattr(method, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
