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
        """The trained gates as arrays: the data offsets, per layer two ring phases and one wall, the last wall.

        Each layer's second RY wall is merged into the next layer's data encoding, since
        RY(w) RY(a) = RY(w + a) on the same qubit: ``offsets[l]`` is the angle added to the data in
        layer l (zero in the first), so per layer the state sees one per-token wall, a phase, one
        constant wall and a phase. Training calls this every step; the deployed model calls it once
        and keeps the result as constants, so its graph holds no trigonometry of trained angles."""
        shape = tuple(2**size for size in self.chunks)
        rings = self.forward_ring.shape[1]
        layers = weights.reshape(self.depth, -1)
        first_wall, second_wall = layers[:, rings : rings + self.n_qubits], layers[:, -self.n_qubits :]
        gates = [torch.cat([torch.zeros_like(second_wall[:1]), second_wall[:-1]])]
        for layer, wall in zip(layers, first_wall):
            forward_angles, backward_angles = layer[:rings], layer[rings + self.n_qubits : -self.n_qubits]
            gates += self._phase(self.forward_ring @ forward_angles, shape)
            gates += self._blocks(ry_matrices(wall)) + self._phase(self.backward_ring @ backward_angles, shape)
        return gates + self._blocks(ry_matrices(second_wall[-1]))

    @staticmethod
    def _phase(phase: torch.Tensor, shape: tuple[int, ...]) -> list[torch.Tensor]:
        """(2, 1, *shape) factors [cos, cos] and [-sin, sin] so that exp(i*phase) is ``state*c + flip(state)*s``."""
        cos, sin = torch.cos(phase).reshape(1, 1, *shape), torch.sin(phase).reshape(1, 1, *shape)
        return [torch.cat([cos, cos]), torch.cat([-sin, sin])]

    def _blocks(self, matrices: torch.Tensor) -> list[torch.Tensor]:
        """Kronecker block per chunk of (..., r, 2, 2) single-qubit matrices."""
        return [kron_all(matrices[..., lo:hi, :, :]) for lo, hi in self.bounds]

    def _apply_wall(self, state: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
        """Apply one Kronecker block per chunk to the (re/im, token, *chunks) state.

        Blocks are (a, a) constants or (token, a, a) per token. The first chunk is a matmul from
        the left and the last one from the right (no transposes, two MatMul nodes in ONNX); a
        middle chunk (r > 8) is an einsum."""
        lead, sizes = state.shape[:2], state.shape[2:]
        first, *middle, last = blocks if len(blocks) > 1 else [*blocks, None]
        state = (first @ state.reshape(*lead, sizes[0], -1)).reshape(state.shape)
        for axis, block in enumerate(middle, start=1):
            legs = "abcdefgh"[: len(sizes)]
            token = "t" if block.dim() == 3 else ""
            state = torch.einsum(f"st{legs},{token}z{legs[axis]}->st{legs.replace(legs[axis], 'z')}", state, block)
        if last is not None:
            state = (state.reshape(*lead, -1, sizes[-1]) @ last.transpose(-1, -2)).reshape(state.shape)
        return state

    def run(self, gates: list[torch.Tensor], data: torch.Tensor) -> torch.Tensor:
        """<Z_i> (tokens, r) of the circuit with prepared ``gates`` and angles ``data`` (tokens, r).

        The per-token encoding blocks of all layers are built in one go, and a phase is
        ``state * c + flip(state) * s`` on the (re, im) axis: what keeps the deployed ONNX graph
        small (it runs once per generated token in every adapted layer)."""
        shape = tuple(2**size for size in self.chunks)
        tokens = data.shape[0]
        state = self.initial.expand(2, tokens, -1).reshape(2, tokens, *shape)
        # per layer, per chunk (tokens, a, a); unbind, not indexing, so backward does not scatter 8 times
        encodings = list(zip(*(block.unbind(1) for block in self._blocks(ry_matrices(data[:, None, :] + gates[0])))))
        per_layer = 4 + len(self.chunks)
        for layer in range(self.depth):
            cos1, sin1, *blocks, cos2, sin2 = gates[1 + layer * per_layer : 1 + (layer + 1) * per_layer]
            state = self._apply_wall(state, list(encodings[layer]))
            state = state * cos1 + state.flip(0) * sin1
            state = self._apply_wall(state, blocks)
            state = state * cos2 + state.flip(0) * sin2
        state = self._apply_wall(state, gates[1 + self.depth * per_layer :])
        probabilities = state.square().sum(0).reshape(tokens, -1)
        return probabilities @ self.signs

    def forward(self, weights: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        return self.run(self.prepare(weights), data)
