"""``--precision``: which dtype the base model computes in, and what stays in float32 regardless.

- ``fp32``: everything in float32 (the default, and the only bitwise-reproducible choice).
- ``bf16``: the frozen base weights are stored in bfloat16 (half the memory) and the forward pass
  runs under ``torch.autocast(bfloat16)``. bfloat16 has float32's exponent range, so no loss scaling.
- ``fp16``: the forward pass runs under ``torch.autocast(float16)`` with the base weights kept in
  float32 (float16 weights would round small updates away) and a ``GradScaler`` so gradients that
  pass through float16 activations do not underflow.

Whatever the choice, the trained tensors (circuit angles, mapping MLP, adapter matrices) are
float32 with float32 optimiser state, and the circuits and generators run with autocast switched
off (:func:`qcompress.numerics.full_precision`). The merge/collapse at
export always runs in float32 on the CPU, from the run's stored float32 tensors.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal

import torch

PrecisionName = Literal["fp32", "bf16", "fp16"]
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    """The autocast context, base-weight dtype and gradient scaler of one fit."""

    name: PrecisionName
    device: torch.device
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self) -> None:
        # a GradScaler only when float16 gradients can underflow; disabled, it is a pass-through
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.name == "fp16")

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return AUTOCAST_DTYPES[self.name]

    @property
    def base_dtype(self) -> torch.dtype:
        """The dtype the frozen base weights are stored in during the fit."""
        return torch.bfloat16 if self.name == "bf16" else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass's autocast region (a no-op for fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def prepare(self, model: torch.nn.Module, trainable: list[torch.nn.Parameter]) -> None:
        """Cast the frozen base to :attr:`base_dtype` and keep every trained tensor in float32.

        Frozen tensors are cast one by one (not ``model.to(dtype)``) so that no trained tensor
        and no circuit constant (complex or float64 buffers of a simulator) changes dtype. The
        stored tensors under a generated adapter tensor (``parametrizations.*.original``) stay in
        float32 too: a residual one is the adapter's start (DoRA's magnitude, VeRA's d), and in
        bf16 the fit would train around a rounded start that the float32 export does not have.
        """
        if self.base_dtype == torch.float32:
            return
        trained = {id(parameter) for parameter in trainable}
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                adapter_start = ".parametrizations." in f".{name}" and name.endswith(".original")
                if id(parameter) not in trained and parameter.dtype == torch.float32 and not adapter_start:
                    parameter.data = parameter.data.to(self.base_dtype)
            for parameter in trainable:
                if parameter.dtype in (torch.float16, torch.bfloat16):
                    parameter.data = parameter.data.float()

