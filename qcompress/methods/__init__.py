"""Adapter methods (LoRA, QPA-LoRA, ...), each registered under the ``qcompress.methods`` entry points."""

from __future__ import annotations

from qcompress import registry
from qcompress.methods.base import AdaptedModel, Collapsed, Method


def get_method_class(name: str) -> type[Method]:
    """The method class registered as ``name`` (one-line InputError listing choices if unknown)."""
    return registry.get("method", name)


def get_method(name: str) -> Method:
    """Instantiate the method registered as ``name`` (one-line InputError listing choices if unknown)."""
    return get_method_class(name)()


__all__ = ["AdaptedModel", "Collapsed", "Method", "get_method", "get_method_class"]
