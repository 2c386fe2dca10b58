"""``manifest.json``: what an artifact is, where it came from, and the hash of every file in it.

No timestamps, no host names: exporting the same model twice gives the same manifest, so the
manifest hash itself identifies the artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qcompress.export.exporter import ExportOptions
from qcompress.integrity import MANIFEST_FORMAT, sha256_file
from qcompress.versions import library_versions

MANIFEST = "manifest.json"
LIBRARIES = ("qcompress", "torch", "transformers", "peft", "onnx", "onnxruntime", "onnxscript", "safetensors", "tokenizers")


def file_table(root: Path) -> list[dict[str, Any]]:
    """Every file under ``root`` (except the manifest), sorted, with sha256 and size."""
    return [
        {"path": path.relative_to(root).as_posix(), "sha256": sha256_file(path), "size": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).as_posix() != MANIFEST
    ]


def build_manifest(
    root: Path, *, source: dict[str, Any], formats: dict[str, dict[str, Any]], options: ExportOptions, command: str
) -> dict[str, Any]:
    return {
        "format_version": MANIFEST_FORMAT,
        "source": source,
        "method": source.get("method", "none"),
        "counts": source.get("counts", {}),
        "dtype": options.dtype,
        "formats": formats,
        "files": file_table(root),
        "libraries": library_versions(LIBRARIES),
        "command": command,
    }
