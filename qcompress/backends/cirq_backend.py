"""Forward-only reference: ``cirq.Simulator`` on the resolved circuit, same output conventions as quimb.

It exists to cross-check the tensor-network path and to evaluate circuits without torch autograd;
it cannot train, so asking it for gradients is refused with a one-line :class:`CapabilityError`.
"""

from __future__ import annotations

from typing import ClassVar

import cirq
import numpy as np
import torch

from qcompress.backends.base import Backend, CompiledCircuit
from qcompress.circuits.base import Ansatz
from qcompress.errors import CapabilityError, InputError


class CirqCircuit(CompiledCircuit):
    """An ansatz bound to a double-precision ``cirq.Simulator``; symbols resolved per call."""

    def __init__(self, ansatz: Ansatz, dtype: torch.dtype) -> None:
        super().__init__()
        self.ansatz = ansatz
        self.n_qubits = ansatz.n_qubits
        self.dtype = dtype
        self.simulator = cirq.Simulator(dtype=np.complex128)

    def _probabilities_one(self, weights: np.ndarray, data: np.ndarray | None) -> np.ndarray:
        values = dict(zip(self.ansatz.weight_symbols, weights.tolist()))
        if data is not None:
            values.update(zip(self.ansatz.data_symbols, data.tolist()))
        result = self.simulator.simulate(
            self.ansatz.circuit, param_resolver=cirq.ParamResolver(values), qubit_order=self.ansatz.qubits
        )
        return np.abs(result.final_state_vector) ** 2

    def probabilities(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        if weights.requires_grad and torch.is_grad_enabled():
            raise CapabilityError("backend 'cirq' is forward-only; train with --backend quimb")
        n_weights, n_data = len(self.ansatz.weight_symbols), len(self.ansatz.data_symbols)
        if weights.shape != (n_weights,):
            raise InputError(f"weights must have shape ({n_weights},), got {tuple(weights.shape)}")
        if (data is None) != (n_data == 0) or (data is not None and (data.ndim != 2 or data.shape[1] != n_data)):
            got = None if data is None else tuple(data.shape)
            raise InputError(f"data must be {'None' if n_data == 0 else f'(batch, {n_data})'} for this circuit, got {got}")
        angles = weights.detach().double().cpu().numpy()  # the simulator runs on the host; the result goes back
        if data is None:
            probs = self._probabilities_one(angles, None)
        else:
            probs = np.stack([self._probabilities_one(angles, row) for row in data.detach().double().cpu().numpy()])
        return torch.from_numpy(probs).to(device=weights.device, dtype=self.dtype)


class CirqBackend(Backend):
    name: ClassVar[str] = "cirq"
    differentiable: ClassVar[bool] = False

    def compile(self, ansatz: Ansatz, dtype: torch.dtype = torch.float32) -> CirqCircuit:
        return CirqCircuit(ansatz, dtype)
