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
        self.sizes = tuple(2**size for size in self.chunks)
        self.register_buffer("forward_ring", ring_phase_map(n_qubits, 1).float(), persistent=False)
        self.register_buffer("backward_ring", ring_phase_map(n_qubits, -1).float(), persistent=False)
        self.register_buffer("signs", z_signs(n_qubits, torch.float32), persistent=False)
        initial = torch.zeros(2, 1, *self.sizes)
        initial.view(-1)[0] = 1.0  # |0...0>, real; (re/im, token axis of size 1, *chunks)
        self.register_buffer("initial", initial, persistent=False)

    def prepare(self, weights: torch.Tensor) -> list[torch.Tensor]:
        """The trained gates as arrays: the data offsets, per layer two ring phases and one wall, the last wall.

        Each layer's second RY wall is merged into the next layer's data encoding, since
        RY(w) RY(a) = RY(w + a) on the same qubit: ``offsets[l]`` is the angle added to the data in
        layer l (zero in the first), so per layer the state sees one per-token wall, a phase, one
        constant wall and a phase. Training calls this every step; the deployed model calls it once
        and keeps the result as constants, so its graph holds no trigonometry of trained angles."""
        shape = self.sizes
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
        """Kronecker block per chunk of (..., r, 2, 2) single-qubit matrices; the last chunk's transposed.

        The last chunk multiplies the state from the right, so its block is built transposed (the
        Kronecker product of the transposed factors): no transpose per layer at run time."""
        blocks = [kron_all(matrices[..., lo:hi, :, :]) for lo, hi in self.bounds[:-1]]
        lo, hi = self.bounds[-1]
        return blocks + [kron_all(matrices[..., lo:hi, :, :].transpose(-1, -2))]

    def _apply_wall(self, state: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
        """Apply one Kronecker block per chunk to the (re/im, *lead, *chunks) state.

        ``lead`` is (token,) in training and (member, token) for a stacked group of deployed layers;
        blocks are constants (*, a, a) or per token (*lead, a, a), broadcast over the re/im axis (and
        over size-1 axes of the initial state). The first chunk is a matmul from the left, the last
        one from the right (its block already transposed), a middle chunk (r > 8) an einsum; only
        flatten/unflatten of the chunk axes reshape, so a traced graph has no shape arithmetic."""
        if len(blocks) == 1:
            return (blocks[0] @ state.unsqueeze(-1)).squeeze(-1)
        first, *middle, last = blocks
        if not middle:
            return first @ state @ last
        sizes, n = self.sizes, len(self.sizes)
        state = (first @ state.flatten(-(n - 1))).unflatten(-1, sizes[1:])
        legs = "abcdefgh"[:n]
        for axis, block in enumerate(middle, start=1):
            state = torch.einsum(f"...{legs},...z{legs[axis]}->...{legs.replace(legs[axis], 'z')}", state, block)
        return (state.flatten(-n, -2) @ last).unflatten(-2, sizes[:-1])

    def run(self, gates: list[torch.Tensor], data: torch.Tensor) -> torch.Tensor:
        """<Z_i> (*lead, r) of the circuit with prepared ``gates`` and angles ``data`` (*lead, r).

        The per-token encoding blocks of all layers are built in one go, the first wall broadcasts
        |0...0> over the tokens, and a phase is ``state * c + flip(state) * s`` on the (re, im)
        axis: what keeps the deployed ONNX graph small (it runs once per generated token in every
        adapted layer). With stacked gates (see :func:`stack_gates`) and data (member, token, r)
        one call runs a whole group of layers."""
        state = self.initial.view(2, *([1] * (data.dim() - 1)), *self.sizes)
        angles = data.unsqueeze(-2) + gates[0].unsqueeze(-3)  # (*lead, layers, r)
        # per layer, per chunk (*lead, a, a); unbind, not indexing, so backward does not scatter per layer
        encodings = list(zip(*(block.unbind(-3) for block in self._blocks(ry_matrices(angles)))))
        per_layer = 4 + len(self.chunks)
        for layer in range(self.depth):
            cos1, sin1, *blocks, cos2, sin2 = gates[1 + layer * per_layer : 1 + (layer + 1) * per_layer]
            state = self._apply_wall(state, list(encodings[layer]))
            state = state * cos1 + state.flip(0) * sin1
            state = self._apply_wall(state, blocks)
            state = state * cos2 + state.flip(0) * sin2
        state = self._apply_wall(state, gates[1 + self.depth * per_layer :])
        probabilities = state.square().sum(0).flatten(-len(self.sizes))
        return probabilities @ self.signs

    def stack(self, members: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """Prepared gates of several circuits of this shape stacked on a member axis, for one :meth:`run`.

        Offsets (L, r) -> (M, L, r); phases (2, 1, *chunks) -> (2, M, 1, *chunks); wall blocks
        (a, a) -> (M, 1, a, a): each broadcasts against a (re/im, member, token, *chunks) state."""
        n = len(self.chunks)
        kinds = ["offsets"] + (["phase"] * 2 + ["block"] * n + ["phase"] * 2) * self.depth + ["block"] * n
        stacked = []
        for kind, gate in zip(kinds, zip(*members), strict=True):
            if kind == "phase":
                stacked.append(torch.stack(gate, 1))
            elif kind == "block":
                stacked.append(torch.stack(gate).unsqueeze(1))
            else:
                stacked.append(torch.stack(gate))
        return stacked

    def forward(self, weights: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        return self.run(self.prepare(weights), data)
