"""What a simulation backend promises: compile an ansatz once, then evaluate it many times.

Compiling is separate from evaluating because the expensive, structure-only work (building a
tensor network, searching a contraction tree, resolving a simulator) must happen once per
circuit, while training calls :meth:`CompiledCircuit.probabilities` once per step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from qcompress.circuits.base import Ansatz
from qcompress.errors import InputError


class CompiledCircuit(torch.nn.Module, ABC):
    """One ansatz ready to evaluate; qubit 0 is the MOST significant bit of a basis index, as in Cirq.

    A module so that the constants a backend precomputes are (non-persistent) buffers: the
    generator or model that holds the circuit moves them with its own ``.to(device)``, and nothing
    is copied to the parameters' device inside a training step."""

    n_qubits: int

    @abstractmethod
    def probabilities(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        """Basis probabilities: weights (n_weight_symbols,), data None or (batch, n_data_symbols) -> (2^N,) or (batch, 2^N)."""

    def expectation_z(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        """<Z_q> for every qubit, (N,) or (batch, N), derived from the probabilities so backends agree by construction."""
        probs = self.probabilities(weights, data)
        return probs @ z_signs(self.n_qubits, probs.dtype, probs.device)


class Backend(ABC):
    """A named way of turning circuits into numbers; ``differentiable`` says whether autograd flows through it."""

    name: ClassVar[str]
    differentiable: ClassVar[bool]
    #: False for stand-ins that replace the circuit (the classical ablation): never suggested as a simulator
    simulates_circuit: ClassVar[bool] = True

    @abstractmethod
    def compile(self, ansatz: Ansatz, dtype: torch.dtype = torch.float32) -> CompiledCircuit:
        """Do the per-structure work once; ``dtype`` is the real precision of the returned probabilities."""


def check_inputs(weights: torch.Tensor, data: torch.Tensor | None, n_weights: int, n_data: int) -> None:
    """The angle vector and the per-sample data a compiled circuit was built for, or a one-line error."""
    if weights.shape != (n_weights,):
        raise InputError(f"weights must have shape ({n_weights},), got {tuple(weights.shape)}")
    if n_data and (data is None or data.ndim != 2 or data.shape[1] != n_data):
        got = None if data is None else tuple(data.shape)
        raise InputError(f"this circuit has {n_data} data symbols; pass data of shape (batch, {n_data}), got {got}")
    if not n_data and data is not None:
        raise InputError("this circuit has no data symbols; call probabilities(weights) without data")


def z_signs(n_qubits: int, dtype: torch.dtype, device: torch.device | str | None = None) -> torch.Tensor:
    """(2^N, N) matrix of Z eigenvalues (+1 for bit 0, -1 for bit 1), qubit 0 most significant."""
    return 1.0 - 2.0 * basis_bits(n_qubits, device).to(dtype)


def basis_bits(n_qubits: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(2^N, N) bits of every basis index, qubit 0 most significant (Cirq's big-endian convention)."""
    index = torch.arange(2**n_qubits, device=device).unsqueeze(1)
    shifts = torch.arange(n_qubits - 1, -1, -1, device=device)
    return (index >> shifts) & 1
