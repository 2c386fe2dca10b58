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

import itertools
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
        ends = list(itertools.accumulate(self.chunks))
        self.bounds = list(zip([0, *ends[:-1]], ends))  # plain ints: the ONNX trace must not read tensors
        self.register_buffer("forward_ring", ring_phase_map(n_qubits, 1).float(), persistent=False)
        self.register_buffer("backward_ring", ring_phase_map(n_qubits, -1).float(), persistent=False)
        self.register_buffer("signs", z_signs(n_qubits, torch.float32), persistent=False)
        initial = torch.zeros(2, 1, 2**n_qubits)
        initial[0, 0, 0] = 1.0  # |0...0>, real
        self.register_buffer("initial", initial, persistent=False)

    def prepare(self, weights: torch.Tensor) -> list[torch.Tensor]:
        """The trained gates as arrays, per layer: ring phases (cos, sin) and RY-wall Kronecker blocks.

        Training calls this every step; the deployed model calls it once and keeps the result as
        constants, so its graph holds no trigonometry of trained angles."""
        shape = tuple(2**size for size in self.chunks)
        rings = self.forward_ring.shape[1]
        gates: list[torch.Tensor] = []
        for layer in weights.reshape(self.depth, -1):
            forward_angles, first_wall = layer[:rings], layer[rings : rings + self.n_qubits]
            backward_angles, second_wall = layer[rings + self.n_qubits : -self.n_qubits], layer[-self.n_qubits :]
            for ring, angles, wall in ((self.forward_ring, forward_angles, first_wall),
                                       (self.backward_ring, backward_angles, second_wall)):
                phase = (ring @ angles).reshape(shape)
                gates += [torch.cos(phase), torch.sin(phase), *self._blocks(ry_matrices(wall))]
        return gates

    def _blocks(self, matrices: torch.Tensor) -> list[torch.Tensor]:
        """Kronecker block per chunk of (..., r, 2, 2) single-qubit matrices."""
        return [kron_all(matrices[..., lo:hi, :, :]) for lo, hi in self.bounds]

    def _apply_wall(self, state: torch.Tensor, blocks: list[torch.Tensor], per_token: bool, lead: str = "st") -> torch.Tensor:
        """Apply one Kronecker block per chunk: one einsum each (a batched matmul over tokens if per token).

        ``lead`` names the two leading axes: "st" = (re/im, token), "ts" = (token, re/im)."""
        legs = "abcdefgh"[: len(self.chunks)]
        token = "t" if per_token else ""
        for axis, block in enumerate(blocks):
            out = legs.replace(legs[axis], "z")
            state = torch.einsum(f"{lead}{legs},{token}z{legs[axis]}->{lead}{out}", state, block)
        return state

    @staticmethod
    def _apply_phase(state: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Multiply every amplitude by exp(i*phase), the (re, im) pair on axis 0."""
        real, imag = state[0], state[1]
        return torch.stack([real * cos - imag * sin, real * sin + imag * cos])

    def run(self, gates: list[torch.Tensor], data: torch.Tensor) -> torch.Tensor:
        """<Z_i> (tokens, r) of the circuit with prepared ``gates`` and angles ``data`` (tokens, r)."""
        shape = tuple(2**size for size in self.chunks)
        tokens = data.shape[0]
        state = self.initial.expand(2, tokens, -1).reshape(2, tokens, *shape)
        encoding = self._blocks(ry_matrices(data))  # per token, re-uploaded in every layer
        per_half = 2 + len(self.chunks)
        for layer in range(self.depth):
            state = self._apply_wall(state, encoding, per_token=True)
            for half in range(2):
                cos, sin, *blocks = gates[(2 * layer + half) * per_half : (2 * layer + half + 1) * per_half]
                state = self._apply_wall(self._apply_phase(state, cos, sin), blocks, per_token=False)
        probabilities = state.square().sum(0).reshape(tokens, -1)
        return probabilities @ self.signs

    def transfer_matrices(self, gates: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per layer, everything after the data encoding as ONE real (2*2^r, 2*2^r) matrix.

        The two rings and walls of a layer do not depend on the token, so their product U is a
        constant; for a row state [re | im], multiplying by [[C, S], [-S, C]] with C + iS = U^T
        applies it. The deployed model uses this (one matmul per layer instead of ~20 small
        operations, far fewer ONNX nodes per generated token); U^T is the circuit run on the basis."""
        size = 2**self.n_qubits
        shape = tuple(2**chunk for chunk in self.chunks)
        per_half = 2 + len(self.chunks)
        transfers = []
        for layer in range(self.depth):
            state = torch.stack([torch.eye(size, dtype=gates[0].dtype), torch.zeros(size, size, dtype=gates[0].dtype)])
            state = state.reshape(2, size, *shape)
            for half in range(2):
                cos, sin, *blocks = gates[(2 * layer + half) * per_half : (2 * layer + half + 1) * per_half]
                state = self._apply_wall(self._apply_phase(state, cos, sin), blocks, per_token=False)
            real, imag = state[0].reshape(size, size), state[1].reshape(size, size)
            transfers.append(torch.cat([torch.cat([real, imag], 1), torch.cat([-imag, real], 1)], 0))
        return transfers

    def run_transfers(self, transfers: list[torch.Tensor], data: torch.Tensor) -> torch.Tensor:
        """<Z_i> (tokens, r) like :meth:`run`, with each layer's constant part given by :meth:`transfer_matrices`."""
        shape = tuple(2**size for size in self.chunks)
        tokens, size = data.shape[0], 2**self.n_qubits
        state = self.initial.reshape(1, 2 * size).expand(tokens, -1)
        encoding = self._blocks(ry_matrices(data))
        for transfer in transfers:
            state = self._apply_wall(state.reshape(tokens, 2, *shape), encoding, per_token=True, lead="ts")
            state = state.reshape(tokens, 2 * size) @ transfer
        probabilities = state.reshape(tokens, 2, size).square().sum(1)
        return probabilities @ self.signs

    def forward(self, weights: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        return self.run(self.prepare(weights), data)
