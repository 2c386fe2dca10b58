"""What a path given to a command is: a training run, an exported artifact, or a model spec.

One answer for every command (``eval``, ``export``, ``generate``, ``verify``): a directory holding
``qcompress.json`` is a run made by ``qcompress fit``, one holding ``manifest.json`` an artifact made
by ``qcompress export``; anything else is a model spec (a local Hugging Face directory, a ``.gguf``
file, a hub id or the embedded default), resolved by :func:`qcompress.models.load_model`. Pure
standard library, so the torch-free runtime uses it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

RUN_HEADER = "qcompress.json"
ARTIFACT_MANIFEST = "manifest.json"

TargetKind = Literal["run", "artifact", "model"]


def target_kind(target: str | Path) -> TargetKind:
    """``run``, ``artifact`` or ``model`` (a run wins if a directory somehow holds both files)."""
    path = Path(target).expanduser()
    if (path / RUN_HEADER).is_file():
        return "run"
    if (path / ARTIFACT_MANIFEST).is_file():
        return "artifact"
    return "model"
