"""The files of an artifact's ``onnx/`` directory, checked and parsed before any graph is loaded.

Verification, the tokenizer and the model's context come first, so a changed file or a prompt
longer than the context is reported in one line before ONNX Runtime builds a session (seconds on
a large model, and a traceback of its own on bad input). Torch-free like the rest of the runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from qcompress.errors import InputError
from qcompress.integrity import verify_directory
from qcompress.runtime.context import context_length
from qcompress.targets import target_kind

GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
CONFIG = "config.json"
GENERATION_CONFIG = "generation_config.json"
REEXPORT = "re-export the artifact"
VERIFY_FIX = f"{REEXPORT}, or pass --no-verify to load it anyway"


def first_line(error: BaseException) -> str:
    """The headline of a library's error message (ONNX Runtime's and tokenizers' run to many lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def find_onnx_dir(artifact: Path) -> Path:
    """``ARTIFACT/onnx``, or ``artifact`` itself when the user pointed at that directory."""
    for candidate in (artifact / "onnx", artifact):
        if (candidate / GRAPH).is_file():
            return candidate
    if not artifact.exists():
        raise InputError(f"artifact {artifact} not found: give the --out directory of a qcompress export")
    if target_kind(artifact) == "run":
        raise InputError(f"{artifact} is a training run, not an artifact: export it first (qcompress export {artifact} --out ARTIFACT)")
    raise InputError(f"no onnx/{GRAPH} under {artifact}: give the --out directory of a qcompress export (made with the onnx format)")


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file the exporter wrote, with a one-line error when it is missing or damaged."""
    if not path.is_file():
        raise InputError(f"{path} is missing: {REEXPORT}")
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot load {path} ({first_line(error)}): {REEXPORT}") from error
    if not isinstance(value, dict):
        raise InputError(f"cannot load {path} (not a JSON object): {REEXPORT}")
    return value


def load_tokenizer(path: Path) -> Tokenizer:
    if not path.is_file():
        raise InputError(f"{path} is missing: {REEXPORT}")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises bare Exception for every parse failure
        raise InputError(f"cannot load {path} ({first_line(error)}): {REEXPORT}") from error


def eos_ids(onnx_dir: Path, config: dict[str, Any]) -> frozenset[int]:
    """EOS ids from generation_config.json, falling back to config.json."""
    ids: set[int] = set()
    generation = onnx_dir / GENERATION_CONFIG
    for source in (read_json_object(generation) if generation.exists() else {}, config):
        value = source.get("eos_token_id")
        ids.update(value if isinstance(value, list) else [] if value is None else [value])
    return frozenset(ids)


@dataclass(frozen=True)
class ArtifactFiles:
    """Everything in ``onnx/`` but the graph, parsed (and verified, when asked)."""

    onnx_dir: Path
    tokenizer: Tokenizer
    config: dict[str, Any]
    eos_ids: frozenset[int]

    @property
    def graph(self) -> Path:
        return self.onnx_dir / GRAPH

    @property
    def context(self) -> int | None:
        """Longest sequence (prompt + generated tokens, or a perplexity window) the model takes."""
        return context_length(self.config)

    def encode(self, text: str) -> list[int]:
        """Token ids as ``transformers`` would give them (special tokens such as BOS included)."""
        return self.tokenizer.encode(text).ids


def open_artifact(artifact: str | Path, verify: bool = True) -> ArtifactFiles:
    """Find ``onnx/``, check its files against ``manifest.json`` (unless ``verify`` is off) and parse them.

    Everything the manifest lists under ``onnx/`` is hashed, external weights included; the graph,
    tokenizer and config must be listed, so a manifest that lists nothing there cannot pass.
    """
    onnx_dir = find_onnx_dir(Path(artifact))
    if verify:
        verify_directory(onnx_dir.parent, onnx_dir.name, (GRAPH, TOKENIZER, CONFIG), VERIFY_FIX)
    config = read_json_object(onnx_dir / CONFIG)
    return ArtifactFiles(onnx_dir, load_tokenizer(onnx_dir / TOKENIZER), config, eos_ids(onnx_dir, config))
