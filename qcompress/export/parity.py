"""ONNX Runtime vs PyTorch logits on fixed prompts, with and without the KV cache.

(a) ``no_cache``: the whole prompt in one call with an empty past. (b) ``cache``: the first half of
the prompt, then the remaining tokens one at a time through ``past_key_values``. Both are compared
against PyTorch's full-prompt logits (the model's meaning, no cache), as max absolute difference.
The session is the runtime's :class:`DecoderSession`, so the check runs the graph as it ships.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from qcompress.errors import CheckFailed, InputError
from qcompress.runtime.decoder_session import DecoderSession


def _prompt_ids(tokenizer: Any, prompts: tuple[str, ...]) -> list[list[int]]:
    ids = [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
    if any(len(sequence) < 2 for sequence in ids):
        raise InputError("every parity prompt must tokenize to at least 2 tokens; use longer prompts")
    return ids


def _torch_logits(model: Any, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def _cached_logits(decoder: DecoderSession, ids: list[int]) -> np.ndarray:
    """Logits for positions prefix-1 .. end from a prefix call followed by one-token steps."""
    prefix = len(ids) // 2
    array = np.asarray([ids], dtype=np.int64)
    logits, past = decoder.step(array[:, :prefix], np.ones((1, prefix), np.int64), decoder.empty_past(1))
    rows = [logits[0, -1]]
    for position in range(prefix, len(ids)):
        mask = np.ones((1, position + 1), np.int64)
        logits, past = decoder.step(array[:, position : position + 1], mask, past)
        rows.append(logits[0, -1])
    return np.stack(rows)


def measure_parity(model: Any, tokenizer: Any, onnx_path: Path, prompts: tuple[str, ...]) -> dict[str, float]:
    """Max abs logit difference without and with the cache, over all prompts."""
    decoder = DecoderSession(onnx_path, threads=None)
    differences: dict[str, list[float]] = {"no_cache": [], "cache": []}
    for ids in _prompt_ids(tokenizer, prompts):
        reference = _torch_logits(model, ids)
        full, _ = decoder.step(np.asarray([ids]), np.ones((1, len(ids)), np.int64), decoder.empty_past(1))
        differences["no_cache"].append(float(np.abs(full[0] - reference).max()))
        cached = _cached_logits(decoder, ids)
        differences["cache"].append(float(np.abs(cached - reference[len(ids) // 2 - 1 :]).max()))
    # np.max, not Python's max: a NaN difference must stay NaN (max(0.0, nan) is 0.0) so the gate sees it
    return {name: float(np.max(values)) for name, values in differences.items()}


def parity_holds(figures: dict[str, float], atol: float) -> bool:
    """Every difference finite and within ``atol`` (a NaN fails: Python's ``max`` would pass over it)."""
    return bool(np.max(list(figures.values())) <= atol)


def require_parity(figures: dict[str, float], atol: float) -> None:
    """Raise :class:`CheckFailed` (exit 3) when either difference exceeds ``atol`` or is not finite."""
    if not parity_holds(figures, atol):
        raise CheckFailed(
            f"ONNX parity failed: max |logit diff| no-cache {figures['no_cache']:.3g}, cache {figures['cache']:.3g} "
            f"> atol {atol:g}; nothing was written (raise --atol only if this difference is acceptable)"
        )
