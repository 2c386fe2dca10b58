"""Which torch device a fit runs on: ``auto`` takes a GPU when one is present, else the CPU."""

from __future__ import annotations

import torch

from qcompress.errors import InputError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available, else mps if available, else cpu; an unavailable device is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown --device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }.get(device.type, False)
    if not available:
        raise InputError(f"--device {name} is not available on this machine: use --device cpu (or auto)")
    return device
