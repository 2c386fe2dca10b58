"""Installed versions of the libraries a run or an artifact depends on, recorded for reproducibility."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version


def library_versions(packages: Iterable[str]) -> dict[str, str]:
    """``{"python": ..., package: version or "not installed"}`` for each of ``packages``."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
