"""Simulation backends, looked up by name through the ``qcompress.backends`` entry points."""

from __future__ import annotations

from qcompress import registry
from qcompress.backends.base import Backend, CompiledCircuit
from qcompress.errors import CapabilityError

__all__ = ["Backend", "CompiledCircuit", "get_backend", "require_differentiable"]


def get_backend(name: str) -> Backend:
    """An instance of the backend registered as ``name``; unknown names are a one-line InputError."""
    return registry.get("backend", name)()


def require_differentiable(backend: Backend) -> None:
    """Refuse, before any work is done, to train through a backend autograd cannot flow through."""
    if not backend.differentiable:
        differentiable = [n for n in registry.names("backend") if getattr(registry.get("backend", n), "differentiable", False)]
        raise CapabilityError(
            f"backend {backend.name!r} is forward-only and cannot train; use --backend {' or '.join(differentiable)}"
        )
