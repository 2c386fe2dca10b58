"""Make an exported Hugging Face directory read the same in transformers 4.57 as in 5.x.

qcompress saves with transformers 5, but many serving stacks pin 4.x (Optimum's ONNX tooling needs
< 4.58). Two things 5.x writes are misread or refused there, checked against the 4.57.6 source:

* RoPE: 5.x writes ``rope_parameters: {rope_type, rope_theta, ...}``; 4.57's configs read only the
  top-level ``rope_theta`` / ``rope_scaling`` and silently fall back to ``rope_theta=10000`` (SmolLM2's
  is 100000: every logit changes). The 4.x fields are added beside ``rope_parameters``; 5.x takes a
  non-null ``rope_scaling`` as its ``rope_parameters`` and ``rope_theta`` only as a default, so both
  versions build the same rotary embedding. RoPE nested per layer type (Gemma 3 style) is left alone.
* Tokenizer: 5.x names its generic fast tokenizer ``TokenizersBackend``, a class 4.57 does not have
  (AutoTokenizer raises). ``PreTrainedTokenizerFast`` is the 4.x name of the same thing (it reads
  tokenizer.json as is), and 5.x maps it back to ``TokenizersBackend``.

``torch_dtype`` needs nothing: 4.56+ reads ``dtype``, and without it 4.x loads float32 or, with
``dtype="auto"``, the checkpoint's own dtype. Safetensors metadata and tensor names are unchanged
since 4.x. tests/interop checks each of these fields and loads the result in a real 4.57.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qcompress.atomic import write_text_atomic

GENERIC_FAST_5X = "TokenizersBackend"
GENERIC_FAST_4X = "PreTrainedTokenizerFast"
ROPE_TOP_LEVEL = ("rope_theta", "partial_rotary_factor")


def rope_fields_4x(rope_parameters: Any) -> dict[str, Any]:
    """The 4.x top-level fields equivalent to a flat 5.x ``rope_parameters`` ({} when there is nothing to add)."""
    if not isinstance(rope_parameters, dict) or any(isinstance(value, dict) for value in rope_parameters.values()):
        return {}
    fields = {key: rope_parameters[key] for key in ROPE_TOP_LEVEL if key in rope_parameters}
    scaling = {key: value for key, value in rope_parameters.items() if key not in ROPE_TOP_LEVEL}
    plain = scaling.get("rope_type", "default") == "default" and set(scaling) <= {"rope_type"}
    fields["rope_scaling"] = None if plain else scaling
    return fields


def _with_rope_fields(config: dict[str, Any]) -> dict[str, Any]:
    updated = {**config, **rope_fields_4x(config.get("rope_parameters"))}
    if isinstance(config.get("text_config"), dict):  # multimodal configs nest the language model's
        updated["text_config"] = _with_rope_fields(config["text_config"])
    return updated


def _rewrite_json(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    changed = change(data)
    if changed != data:
        write_text_atomic(path, json.dumps(changed, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _tokenizer_class_4x(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("tokenizer_class") != GENERIC_FAST_5X:
        return config
    return {**config, "tokenizer_class": GENERIC_FAST_4X}


def make_transformers4_readable(directory: Path) -> None:
    """Add 4.x RoPE fields to config.json and give tokenizer_config.json a class 4.x has, in place."""
    _rewrite_json(directory / "config.json", _with_rope_fields)
    if (directory / "tokenizer.json").is_file():  # PreTrainedTokenizerFast needs tokenizer.json
        _rewrite_json(directory / "tokenizer_config.json", _tokenizer_class_4x)
