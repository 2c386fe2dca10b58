"""File hashes that let a later stage tell a file is the one qcompress wrote (torch-free).

Artifacts list the sha256 of every file in ``manifest.json``; runs check their trained state the
same way. Kept dependency-free so that the ONNX Runtime path can verify what it loads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from qcompress.errors import InputError

MANIFEST_FORMAT = 1  # the manifest layout this qcompress writes and reads (qcompress.export.manifest)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest_table(manifest: Path, fix: str) -> dict[str, dict[str, Any]]:
    """``relative path -> {"sha256", "size"}`` from a manifest's ``files`` list.

    A manifest that is missing or unreadable is an error, not a pass: skipping the check must be
    the user's explicit choice (``fix`` says how), never what a deleted manifest silently buys.
    """
    if not manifest.is_file():
        raise InputError(f"{manifest} is missing, so the files cannot be checked against their sha256: {fix}")
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
        version, files = document["format_version"], document["files"]
        table = {entry["path"]: {"sha256": entry["sha256"], "size": entry["size"]} for entry in files}
    except (ValueError, KeyError, TypeError) as error:
        reason = f"no {error} entry" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise InputError(f"{manifest} cannot be read as a manifest with a file table ({reason}): {fix}") from error
    if version != MANIFEST_FORMAT:
        raise InputError(f"{manifest} has format {version!r}; this qcompress reads format {MANIFEST_FORMAT}: {fix}")
    outside = [path for path in table if not _inside(path)]
    if outside:
        raise InputError(f"{manifest} lists {outside[0]!r}, a path outside the artifact: {fix}")
    return table


def _inside(relative: Any) -> bool:
    """A manifest path that stays inside the artifact: relative, no '..', no drive or backslash tricks."""
    if not isinstance(relative, str) or not relative or "\\" in relative:
        return False
    parts = PurePosixPath(relative).parts
    return not PurePosixPath(relative).is_absolute() and ".." not in parts and ":" not in parts[0]


def verify_directory(root: Path, directory: str, required: Iterable[str], fix: str, manifest_name: str = "manifest.json") -> None:
    """Check every file that ``root/manifest_name`` lists under ``directory`` against its size and sha256.

    ``required`` (names inside ``directory``) must be listed: otherwise a manifest that lists
    nothing there would pass. The size is compared first, so a truncated file is caught unhashed.
    """
    manifest = root / manifest_name
    table = manifest_table(manifest, fix)
    prefix = f"{directory}/"
    for name in required:
        if prefix + name not in table:
            raise InputError(f"{root / directory / name} is not listed in {manifest}, so it cannot be checked: {fix}")
    for relative in sorted(path for path in table if path.startswith(prefix)):
        _check_listed(root, relative, table[relative], manifest, fix)


def verify_listed_files(root: Path, fix: str, manifest_name: str = "manifest.json") -> list[str]:
    """Check every file ``root/manifest_name`` lists, and that it lists every file there is; return
    their relative paths (``qcompress verify``). An unlisted file would otherwise pass unchecked, and a
    manifest listing nothing would pass everything."""
    manifest = root / manifest_name
    table = manifest_table(manifest, fix)
    on_disk = sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())
    unlisted = [path for path in on_disk if path not in table and path != manifest_name]
    if unlisted:
        raise InputError(f"{root / unlisted[0]} is not listed in {manifest}, so it cannot be checked: {fix}")
    for relative in sorted(table):
        _check_listed(root, relative, table[relative], manifest, fix)
    return [manifest_name, *sorted(table)]


def _check_listed(root: Path, relative: str, entry: dict[str, Any], manifest: Path, fix: str) -> None:
    """One listed file against its size (a truncated file is caught unhashed) and sha256."""
    path = root / relative
    if not path.is_file():
        raise InputError(f"{path} is listed in {manifest} but missing: {fix}")
    if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
        raise InputError(f"{path} does not match its sha256 in {manifest} (changed or corrupt): {fix}")
