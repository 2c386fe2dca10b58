"""Cirq ansatz builders, looked up by name through the ``qcompress.ansatze`` entry points."""

from __future__ import annotations

from typing import Any

from qcompress import registry
from qcompress.circuits.base import Ansatz, init_weights

__all__ = ["Ansatz", "build_ansatz", "init_weights"]


def build_ansatz(name: str, **kwargs: Any) -> Ansatz:
    """Build the ansatz registered as ``name`` (built-in or plugin) with builder-specific keyword arguments."""
    return registry.get("ansatz", name)(**kwargs)
