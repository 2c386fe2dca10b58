"""Snapshots of what is on disk, and the shape of a one-line error, for the safety and fault tests."""

from __future__ import annotations

from pathlib import Path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (or ``root`` itself when it is a file) by relative path, with its bytes."""
    if root.is_file():
        return {".": root.read_bytes()}
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def leftovers(folder: Path) -> list[str]:
    """Temporary or staging entries qcompress made in ``folder`` or below it."""
    return sorted(path.name for path in folder.rglob("*") if ".qcompress-" in path.name)


def error_line(stderr: str) -> str:
    """The one ``error:`` line of a failed command (progress bars may come before it, nothing else)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]
