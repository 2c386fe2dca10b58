"""The small contract every export format fulfils, built-in or plugin.

An exporter is a class with a ``name`` (its registry key), a ``directory`` (the sub-folder of the
artifact it fills) and ``export(model, tokenizer, out_dir, options) -> dict``. The returned dict is
stored in the manifest under the exporter's name, so each format can report what matters for it
(opset, parity figures, dtype) without the artifact writer knowing about it. An exporter that needs
more than the merged model (the ``peft`` format needs the adapter from before the merge) may also
define ``prepare(collapsed, source)``, called before anything is written: it takes what it needs
from the :class:`~qcompress.methods.base.Collapsed` contract, or refuses with a CapabilityError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

DTYPES = ("float32", "float16", "bfloat16")

DEFAULT_PROMPTS = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune",
    "The weather was fine and the morning walk",
    "She said that her sister would never",
)


@dataclass(frozen=True)
class ExportOptions:
    """What the user asked for, resolved to concrete values before any exporter runs."""

    dtype: str = "float32"
    atol: float = 1e-4
    opset: int = 18
    prompts: tuple[str, ...] = field(default=DEFAULT_PROMPTS)


class Exporter(Protocol):
    name: str
    directory: str

    def export(self, model: Any, tokenizer: Any, out_dir: Path, options: ExportOptions) -> dict[str, Any]:
        """Write this format into ``out_dir`` (already created, empty); return manifest info."""
        ...
