"""Choosing the next token from logits: greedy, or sampled with temperature, top-k and top-p.

Pure numpy so the runtime stays free of torch; a seeded ``numpy.random.Generator`` makes sampled
generations reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qcompress.errors import InputError


@dataclass(frozen=True)
class SamplingConfig:
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.temperature) or not np.isfinite(self.top_p):
            raise InputError(f"temperature and top_p must be finite numbers, got {self.temperature} and {self.top_p}")
        if self.temperature <= 0:
            raise InputError(f"temperature must be > 0, got {self.temperature}; use greedy decoding (no --sample) instead of 0")
        if self.top_k < 0:
            raise InputError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")


def next_token(logits: np.ndarray, config: SamplingConfig, rng: np.random.Generator) -> int:
    """One token id from a (vocab,) logits vector."""
    if not config.do_sample:
        return int(np.argmax(logits))
    scores = logits.astype(np.float64) / config.temperature
    if 0 < config.top_k < scores.size:
        kth = np.partition(scores, -config.top_k)[-config.top_k]
        scores = np.where(scores < kth, -np.inf, scores)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if config.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, config.top_p)) + 1]
        filtered = np.zeros_like(probs)
        filtered[keep] = probs[keep]
        probs = filtered / filtered.sum()
    return int(rng.choice(probs.size, p=probs))
