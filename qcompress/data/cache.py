"""Corpora cached as plain UTF-8 files beside a manifest of their sha256, published atomically and
checked on every read: a training text that changed on disk would silently change every result."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from qcompress.atomic import publish_directory, staging_directory
from qcompress.errors import InputError
from qcompress.models import cache_dir


def corpus_dir(name: str) -> Path:
    """Where the corpus ``name`` is cached (it may not exist yet)."""
    return cache_dir() / "corpora" / name


def publish_texts(target: Path, texts: dict[str, str], manifest_name: str, about: dict[str, Any]) -> Path:
    """Write ``texts`` as ``NAME.txt`` files plus a manifest (``about`` and their sha256) into a staging
    folder, then publish it as ``target`` in one rename, so a reader never sees half a corpus."""
    staging = staging_directory(target)
    try:
        hashes = {}
        for name, text in texts.items():
            data = text.encode("utf-8")
            (staging / f"{name}.txt").write_bytes(data)
            hashes[f"{name}.txt"] = hashlib.sha256(data).hexdigest()
        (staging / manifest_name).write_text(json.dumps({**about, "sha256": hashes}, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return publish_directory(staging, target)


def read_manifest(folder: Path, manifest_name: str) -> dict[str, Any]:
    """The cached corpus's manifest; a missing or unreadable one says how to rebuild the cache."""
    path = folder / manifest_name
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), dict):
        raise _corrupt(path, folder)
    return manifest


def read_checked_texts(folder: Path, manifest_name: str, names: list[str] | None = None) -> dict[str, str]:
    """The cached texts by name (``names``, else every file the manifest lists, in its order), each
    checked against the manifest's sha256."""
    hashes = read_manifest(folder, manifest_name)["sha256"]
    if names is None:
        names = [file.removesuffix(".txt") for file in hashes]
    texts = {}
    for name in names:
        path = folder / f"{name}.txt"
        data = path.read_bytes() if path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != hashes.get(path.name):
            raise _corrupt(path, folder)
        texts[name] = data.decode("utf-8")
    return texts


def _corrupt(path: Path, folder: Path) -> InputError:
    return InputError(f"cached corpus file {path} is missing or corrupt: delete {folder} and run `qcompress prepare`")
