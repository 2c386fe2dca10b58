"""One registry for ansätze, backends, methods and exporters, fed by entry points.

Built-ins are declared in qcompress's own ``pyproject.toml`` under the same entry-point groups a
plugin package uses, so a plugin is indistinguishable from a built-in: install it and its name
appears here. Objects can also be registered at run time with :func:`register` (tests do this).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from qcompress.errors import InputError

GROUPS = {
    "ansatz": "qcompress.ansatze",
    "backend": "qcompress.backends",
    "method": "qcompress.methods",
    "exporter": "qcompress.exporters",
}

_runtime: dict[str, dict[str, Any]] = {kind: {} for kind in GROUPS}


def _entry_points(kind: str) -> dict[str, Any]:
    if kind not in GROUPS:
        raise InputError(f"unknown registry kind {kind!r}; expected one of {sorted(GROUPS)}")
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def names(kind: str) -> list[str]:
    """All registered names of one kind, sorted."""
    return sorted(set(_entry_points(kind)) | set(_runtime[kind]))


def get(kind: str, name: str) -> Any:
    """The object registered as ``name`` (loading its entry point), or a one-line error listing the choices."""
    eps = _entry_points(kind)  # validates kind first
    if name in _runtime[kind]:
        return _runtime[kind][name]
    if name not in eps:
        raise InputError(f"unknown {kind} {name!r}; choose one of: {', '.join(names(kind))}")
    try:
        return eps[name].load()
    except (ImportError, AttributeError) as error:
        raise InputError(
            f"{kind} {name!r} is registered by {eps[name].value} but cannot be loaded ({error}): "
            "reinstall the package that provides it"
        ) from None


def register(kind: str, name: str, obj: Any) -> None:
    """Register ``obj`` under ``name`` for this process (entry points are the persistent way)."""
    _entry_points(kind)  # validates kind
    _runtime[kind][name] = obj


def unregister(kind: str, name: str) -> None:
    _runtime[kind].pop(name, None)
