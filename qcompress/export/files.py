"""Filesystem helpers that keep artifacts whole: hashing and an atomic directory swap."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def make_readable(root: Path) -> None:
    """0644 for every file: temp-file writers (mkstemp) create 0600 files, and an artifact is meant
    to be read by whoever deploys it, not only by the user who exported it."""
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(0o644)


def replace_directory(new: Path, target: Path) -> None:
    """Move the finished ``new`` directory to ``target``, replacing an old one only at the end.

    A directory cannot be swapped in one ``os.replace`` when the target exists, so the old one is
    first renamed aside and restored if the final rename fails; it is deleted only after success.
    """
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, backup)
    try:
        os.replace(new, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
