"""The QTHA circuit as a plain-torch state vector in real arithmetic: fast to train, exportable to ONNX.

Why not the quimb backend in the training loop: the circuit is tiny (r qubits) but runs once per
token in every adapted layer (512 tokens x 60 layers per step on SmolLM2), where a dense state of
2^r amplitudes per token and a handful of batched matmuls per layer beat a tensor-network
contraction. The quimb backend stays the checked reference (tests compare both, and both against
``cirq.Simulator``). Everything is real: the amplitudes are kept as a (re, im) pair, the CRZ rings
are diagonal phases (one precomputed (2^r, r) map from angles to phases per ring) and the RY walls
are Kronecker products of real 2x2 matrices applied in chunks of at most ``CHUNK_QUBITS`` qubits.
The same code therefore runs in training and, with the trained angles as constants, in the ONNX
graph of the deployed model, where ONNX Runtime needs no quantum package.
"""

from __future__ import annotations

import math

import torch

from qcompress.backends.absorption import kron_all
from qcompress.backends.base import basis_bits, z_signs
from qcompress.circuits.qtha_ansatz import check_size, ring_pairs, weights_per_layer

CHUNK_QUBITS = 4


def ry_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) real RY(angle) = [[cos, -sin], [sin, cos]] of half the angle, as Cirq defines it."""
    cos, sin = torch.cos(angles / 2), torch.sin(angles / 2)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def ring_phase_map(n_qubits: int, step: int) -> torch.Tensor:
    """(2^r, gates): phase of each basis state per unit CRZ angle, bit_control * (bit_target - 1/2)."""
    bits = basis_bits(n_qubits).to(torch.float64)
    columns = [bits[:, c] * (bits[:, t] - 0.5) for c, t in ring_pairs(n_qubits, step)]
    return torch.stack(columns, 1) if columns else torch.zeros(2**n_qubits, 0, dtype=torch.float64)


class QthaStatevector(torch.nn.Module):
    """``forward(weights, data) -> <Z_i>``: weights in the ansatz's symbol order, data (tokens, r)."""

    def __init__(self, n_qubits: int, depth: int) -> None:
        super().__init__()
        check_size(n_qubits, depth)
        self.n_qubits, self.depth = n_qubits, depth
        self.n_weights = depth * weights_per_layer(n_qubits)
        n_chunks = math.ceil(n_qubits / CHUNK_QUBITS)
        self.chunks = [len(part) for part in torch.arange(n_qubits).tensor_split(n_chunks)]
        self.register_buffer("forward_ring", ring_phase_map(n_qubits, 1).float(), persistent=False)
        self.register_buffer("backward_ring", ring_phase_map(n_qubits, -1).float(), persistent=False)
        self.register_buffer("signs", z_signs(n_qubits, torch.float32), persistent=False)

    def _apply_wall(self, state: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
        """Apply RY on every qubit; ``matrices`` (r, 2, 2) shared or (tokens, r, 2, 2) per token.

        One einsum per chunk, so per-token blocks become one batched matmul over tokens."""
        token = "t" if matrices.ndim == 4 else ""
        first = 0
        for axis, size in enumerate(self.chunks):
            block = kron_all(matrices[..., first : first + size, :, :])
            first += size
            legs = "abcdefgh"[: len(self.chunks)]
            out = legs.replace(legs[axis], "z")
            state = torch.einsum(f"st{legs},{token}z{legs[axis]}->st{out}", state, block)
        return state

    @staticmethod
    def _apply_phase(state: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Multiply every amplitude by exp(i*phase) (phase over basis states, shaped like one token's state)."""
        cos, sin = torch.cos(phase), torch.sin(phase)
        real, imag = state[0], state[1]
        return torch.stack([real * cos - imag * sin, real * sin + imag * cos])

    def forward(self, weights: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        tokens = data.shape[0]
        shape = tuple(2**size for size in self.chunks)
        state = torch.zeros(2, tokens, 2**self.n_qubits, dtype=data.dtype, device=data.device)
        state[0, :, 0] = 1.0
        state = state.reshape(2, tokens, *shape)
        encoding = ry_matrices(data)  # (tokens, r, 2, 2), re-uploaded in every layer
        rings = self.forward_ring.shape[1]
        for layer in weights.reshape(self.depth, -1):
            forward_angles, walls = layer[:rings], layer[rings:]
            state = self._apply_wall(state, encoding)
            state = self._apply_phase(state, (self.forward_ring @ forward_angles).reshape(shape))
            state = self._apply_wall(state, ry_matrices(walls[: self.n_qubits]))
            backward_angles = walls[self.n_qubits : self.n_qubits + rings]
            state = self._apply_phase(state, (self.backward_ring @ backward_angles).reshape(shape))
            state = self._apply_wall(state, ry_matrices(walls[self.n_qubits + rings :]))
        probabilities = state.square().sum(0).reshape(tokens, -1)
        return probabilities @ self.signs
