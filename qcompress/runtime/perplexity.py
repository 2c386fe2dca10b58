"""Token-weighted sliding-window perplexity, defined once for every backend.

Windows of ``seq_len`` tokens start every ``stride`` tokens; each window scores only the tokens
no earlier window scored, and never its own first token (it has no context in the window), so no
token counts twice and the mean is over tokens, not windows. With ``stride < seq_len`` every token
after the first is scored. Windows run one at a time, so there is no padding to exclude. Same plan
as ``qcompress.training.evaluate`` (PyTorch), so ONNX and PyTorch perplexities are comparable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qcompress.errors import InputError


def sliding_windows(n_tokens: int, seq_len: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, n_scored)``: run tokens[begin:end] and score its last ``n_scored`` tokens."""
    if seq_len < 2 or not 1 <= stride <= seq_len:
        raise InputError(f"need seq_len >= 2 and 1 <= stride <= seq_len, got seq_len={seq_len}, stride={stride}")
    if n_tokens < 2:
        raise InputError(f"perplexity needs at least 2 tokens, got {n_tokens}")
    windows, scored_until = [], 0
    for begin in range(0, n_tokens - 1, stride):
        end = min(begin + seq_len, n_tokens)
        windows.append((begin, end, end - max(scored_until, begin + 1)))
        scored_until = end
        if end == n_tokens:
            break
    return windows


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def sliding_perplexity(
    token_ids: np.ndarray, seq_len: int, stride: int, logits_fn: Callable[[np.ndarray], np.ndarray]
) -> dict[str, float | int]:
    """Perplexity of ``token_ids`` under ``logits_fn(window_ids) -> (len, vocab) logits``."""
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    total_nll, scored = 0.0, 0
    windows = sliding_windows(ids.size, seq_len, stride)
    for begin, end, n_scored in windows:
        log_probs = log_softmax(logits_fn(ids[begin:end]))
        targets = np.arange(end - n_scored, end)
        total_nll -= float(log_probs[targets - 1 - begin, ids[targets]].sum())
        scored += n_scored
    mean_nll = total_nll / scored
    return {"perplexity": float(np.exp(mean_nll)), "nll": mean_nll, "tokens": scored, "windows": len(windows)}
