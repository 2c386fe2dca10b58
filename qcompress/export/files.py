"""Artifact files readable by whoever deploys them."""

from __future__ import annotations

from pathlib import Path


def make_readable(root: Path) -> None:
    """0644 for every file: temp-file writers (mkstemp) create 0600 files, and an artifact is meant
    to be read by whoever deploys it, not only by the user who exported it."""
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
