"""Whether QTHA's circuits keep their intermediates for the backward pass or recompute them there.

Why a choice: the per-token circuit keeps about 8 state-sized arrays (tokens x 2^r amplitudes) per
circuit layer and adapted layer for backward (measured: 123 MB for one sibling group of SmolLM2-135M
at 512 tokens, r = 8, L = 8; ~3.7 GB over its 30 blocks, 16x that at 16 x 512 tokens; the first
training form kept ~10 GB at 512 tokens and was OOM-killed). Recomputing them in backward
(``torch.utils.checkpoint``) keeps the memory flat but runs every circuit twice: ~30% of the
circuit's time in a step. ``auto`` keeps them when the estimate for every
adapted layer fits in half of the device's free memory, measured once per batch shape (the
only host query, at the first step of that shape), and recomputes otherwise. Either way the
gradients are the same numbers: recomputation repeats the same deterministic operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import psutil
import torch

RecomputeMode = Literal["auto", "always", "never"]

#: share of the device's free memory the circuits' kept intermediates may take (the base model's
#: activations, the optimizer and everything else share the rest). A quarter made SmolLM2's default
#: QTHA (estimate 5.7 GB at 4 x 128 tokens, 3.7 GB measured) recompute on a 24 GB machine running
#: another fit; half keeps it there, and still recomputes at 16 x 512 tokens on an 80 GB GPU
KEEP_SHARE = 0.5
#: bytes kept for backward per token, adapted layer, circuit layer and amplitude (2^r, plus 32 for the
#: per-token rotation blocks, which dominate at small r): measured 33-77 over r = 3..12 at 10-512 tokens
#: (tests/methods/test_qtha_recompute.py), so with the gates' fixed share (4 tokens' worth) an upper bound
KEPT_BYTES = 80


def free_memory(device: torch.device) -> int:
    """Bytes the device can still give: free GPU memory on CUDA, available system memory otherwise."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def kept_bytes(tokens: int, layers: int, n_qubits: int, depth: int) -> int:
    """Estimated bytes every adapted layer's circuit keeps for backward in one step of ``tokens`` tokens."""
    return (tokens + 4) * layers * depth * (2**n_qubits + 32) * KEPT_BYTES


class RecomputePolicy:
    """One decision per batch shape and device for every circuit of a model (``mode`` ``auto``), or a fixed one."""

    def __init__(self, mode: RecomputeMode, layers: int, n_qubits: int, depth: int,
                 probe: Callable[[torch.device], int] = free_memory) -> None:
        self.mode, self.layers, self.n_qubits, self.depth, self.probe = mode, layers, n_qubits, depth, probe
        self._decided: dict[tuple[int, str], bool] = {}

    def recompute(self, tokens: int, device: torch.device) -> bool:
        """True: run the circuit under checkpoint (recompute in backward); False: keep its intermediates."""
        if self.mode != "auto":
            return self.mode == "always"
        key = (tokens, str(device))
        if key not in self._decided:
            estimate = kept_bytes(tokens, self.layers, self.n_qubits, self.depth)
            self._decided[key] = estimate > KEEP_SHARE * self.probe(device)
        return self._decided[key]
