"""Numerical contexts shared by every layer of the package (circuits, generators, methods, training)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Autocast switched off for the enclosed computation.

    Circuits and generators run in the dtype of their own parameters (float32, or float64 for a
    reference simulator) whatever ``--precision`` the surrounding forward pass uses: a state
    vector's probabilities are small numbers whose differences carry the signal, and bfloat16
    keeps under three significant digits of them.
    """
    if not torch.amp.is_autocast_available(device.type):  # e.g. the meta device: nothing to switch off
        yield
        return
    with torch.autocast(device_type=device.type, enabled=False):
        yield
