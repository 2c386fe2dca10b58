"""Simulation backends, looked up by name through the ``qcompress.backends`` entry points."""

from __future__ import annotations

from qcompress import registry
from qcompress.backends.base import Backend, CompiledCircuit
from qcompress.errors import CapabilityError, QcompressError

__all__ = ["Backend", "CompiledCircuit", "get_backend", "require_differentiable"]


def get_backend(name: str) -> Backend:
    """An instance of the backend registered as ``name``; unknown names are a one-line InputError."""
    return registry.get("backend", name)()


def require_differentiable(backend: Backend) -> None:
    """Refuse, before any work is done, to train through a backend autograd cannot flow through."""
    if not backend.differentiable:
        differentiable = [name for name in registry.names("backend") if _trains_a_circuit(name)]
        raise CapabilityError(
            f"backend {backend.name!r} is forward-only and cannot train; use --backend {' or '.join(differentiable)}"
        )


def _trains_a_circuit(name: str) -> bool:
    """Whether backend ``name`` loads, simulates the circuit itself, and passes gradients."""
    try:
        backend = registry.get("backend", name)
    except QcompressError:
        return False
    return bool(getattr(backend, "differentiable", False) and getattr(backend, "simulates_circuit", True))
