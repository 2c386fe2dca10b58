"""The QTHA circuit as a plain-torch state vector in real arithmetic: the form it is trained in.

Why not the quimb backend in the training loop: the circuit is tiny (r qubits) but runs once per
token in every adapted layer (512 tokens x 60 layers per step on SmolLM2), where a dense state of
2^r amplitudes per token and a handful of batched matmuls per layer beat a tensor-network
contraction. The quimb backend stays the checked reference (tests compare both, and both against
``cirq.Simulator``). Everything is real: the amplitudes are kept as a (re, im) pair, the CRZ rings
are diagonal phases (one precomputed (2^r, r) map from angles to phases per ring) and the RY walls
are Kronecker products of real 2x2 matrices applied in chunks of at most ``CHUNK_QUBITS`` qubits.
The deployed model runs the same circuits with constant gates in another layout, built for
ONNX Runtime's per-operation cost (:mod:`qcompress.export.qtha_compiled`), from :meth:`QthaStatevector.schedule`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from qcompress.backends.base import basis_bits, z_signs
from qcompress.circuits.qtha_ansatz import check_size, ring_pairs, weights_per_layer

CHUNK_QUBITS = 4


def rotation_basis(n_qubits: int, transpose: bool) -> torch.Tensor:
    """(2^k, 4^k): row S is the flattened Kronecker product of J on the qubits set in S and I elsewhere.

    RY(a) = cos(a/2) I + sin(a/2) J with J = [[0, -1], [1, 0]], so a wall of k RY gates is
    sum_S w_S J_S with w = kron over qubits of (cos, sin): one matmul of w with this basis builds
    the wall's 2^k x 2^k block (transposed if asked), with no permutation or interleaved broadcast."""
    identity, j = torch.eye(2, dtype=torch.float64), torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    rows = []
    for subset in range(2**n_qubits):
        block = torch.ones(1, 1, dtype=torch.float64)
        for qubit in range(n_qubits):
            block = torch.kron(block, j if (subset >> (n_qubits - 1 - qubit)) & 1 else identity)
        rows.append((block.T if transpose else block).reshape(-1))
    return torch.stack(rows)


def bit_selector(n_qubits: int) -> torch.Tensor:
    """(2k, k * 2^k): maps the (cos, sin) pairs of k qubits to, per qubit, the factor every basis state S takes
    (cos if the qubit's bit in S is 0, sin if 1); their product over the qubits is kron of the pairs."""
    selector = torch.zeros(2 * n_qubits, n_qubits, 2**n_qubits, dtype=torch.float64)
    for qubit in range(n_qubits):
        for subset in range(2**n_qubits):
            selector[2 * qubit + ((subset >> (n_qubits - 1 - qubit)) & 1), qubit, subset] = 1.0
    return selector.reshape(2 * n_qubits, -1)


@dataclass(frozen=True)
class GateSchedule:
    """A circuit's trained angles in the order the state meets them (see :meth:`QthaStatevector.schedule`)."""

    offsets: torch.Tensor  # (layers, r): added to the data angles of each layer's encoding wall
    forward_phases: torch.Tensor  # (layers, 2^r): phase per basis state of the i -> i+1 CRZ ring
    walls: torch.Tensor  # (layers, r): the constant RY wall between the rings
    backward_phases: torch.Tensor  # (layers, 2^r): phase per basis state of the i -> i-1 CRZ ring
    final_wall: torch.Tensor  # (r,): the last layer's second RY wall


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
        self.bounds = list(zip([0, *ends[:-1]], ends))
        self.sizes = tuple(2**size for size in self.chunks)
        self.register_buffer("forward_ring", ring_phase_map(n_qubits, 1).float(), persistent=False)
        self.register_buffer("backward_ring", ring_phase_map(n_qubits, -1).float(), persistent=False)
        self.register_buffer("signs", z_signs(n_qubits, torch.float32), persistent=False)
        # state layout (tokens, chunk_1, re/im, chunk_2, ..., chunk_n): the first chunk's blocks multiply the
        # (chunk_1, rest) view from the left, the last one's the (rest, chunk_n) view from the right
        self.layout = (self.sizes[0], 2, *self.sizes[1:])
        initial = torch.zeros(self.layout)
        initial.view(-1)[0] = 1.0  # |0...0>, real
        self.register_buffer("initial", initial, persistent=False)
        self.register_buffer("swap_index", torch.tensor([1, 0]), persistent=False)
        for index, size in enumerate(self.chunks):  # the last chunk multiplies from the right: its blocks transposed
            basis = rotation_basis(size, transpose=index == n_chunks - 1 and n_chunks > 1)
            self.register_buffer(f"rotation_basis_{index}", basis.float(), persistent=False)
            self.register_buffer(f"bit_selector_{index}", bit_selector(size).float(), persistent=False)

    def schedule(self, weights: torch.Tensor) -> GateSchedule:
        """The trained angles regrouped as the circuit applies them, each layer's second RY wall merged forward.

        RY(w) RY(a) = RY(w + a) on the same qubit, so a layer's second wall becomes the next layer's
        data offset (zero in the first layer) and per layer the state sees one per-token wall, a
        phase, one constant wall and a phase; the last layer's second wall stays as the final wall."""
        rings = self.forward_ring.shape[1]
        layers = weights.reshape(self.depth, -1)
        second_wall = layers[:, -self.n_qubits :]
        return GateSchedule(
            offsets=torch.cat([torch.zeros_like(second_wall[:1]), second_wall[:-1]]),
            forward_phases=layers[:, :rings] @ self.forward_ring.T.to(weights.dtype),
            walls=layers[:, rings : rings + self.n_qubits],
            backward_phases=layers[:, rings + self.n_qubits : -self.n_qubits] @ self.backward_ring.T.to(weights.dtype),
            final_wall=second_wall[-1],
        )

    def prepare(self, weights: torch.Tensor) -> list[torch.Tensor]:
        """The trained gates as arrays: the data offsets, per layer two ring phases and one wall, the last wall.

        Training calls this every step (the gates depend on the trained angles)."""
        plan = self.schedule(weights)
        gates = [plan.offsets]
        for forward, wall, backward in zip(plan.forward_phases, plan.walls, plan.backward_phases):
            gates += self._phase(forward) + self._walls(wall) + self._phase(backward)
        return gates + self._walls(plan.final_wall)

    def _phase(self, phase: torch.Tensor) -> list[torch.Tensor]:
        """Factors c = [cos, cos] and s = [-sin, sin] on the re/im axis: exp(i*phase) is ``state*c + swap(state)*s``."""
        cos, sin = torch.cos(phase).reshape(self.sizes).unsqueeze(1), torch.sin(phase).reshape(self.sizes).unsqueeze(1)
        return [torch.cat([cos, cos], 1), torch.cat([-sin, sin], 1)]

    def _walls(self, angles: torch.Tensor, lead: tuple[int, ...] = ()) -> list[torch.Tensor]:
        """Per chunk, the Kronecker block of an RY wall with ``angles`` (*lead, r), as (*lead, a, a).

        w = kron of (cos, sin) of the chunk's half angles (one matmul with :func:`bit_selector` and a
        product over the qubits), then one matmul with :func:`rotation_basis`; ``lead`` gives the
        leading shape with -1 for the token axis."""
        half = angles / 2
        pairs = torch.stack([torch.cos(half), torch.sin(half)], -1)  # (*lead, r, 2)
        blocks = []
        for index, (lo, hi) in enumerate(self.bounds):
            size = hi - lo
            factors = pairs[..., lo:hi, :].reshape(*lead, 2 * size) @ getattr(self, f"bit_selector_{index}")
            weights = factors.reshape(*lead, size, 2**size).prod(-2)  # kron of the (cos, sin) pairs
            block = weights @ getattr(self, f"rotation_basis_{index}")
            blocks.append(block.reshape(*lead, 2**size, 2**size))
        return blocks

    def _apply_wall(self, state: torch.Tensor, blocks: list[torch.Tensor], lead: tuple[int, ...]) -> torch.Tensor:
        """Apply one Kronecker block per chunk to the (*lead, chunk_1, re/im, chunk_2, ...) state.

        ``lead`` is the state's leading shape with -1 for the tokens; blocks are constants (*, a, a) or per token (*lead, a, a). The first chunk is a matmul from
        the left on the (chunk_1, everything else) view, the last one from the right on the
        (everything else, chunk_n) view (its block already transposed), a middle chunk (r > 8) an
        einsum. Views of the same memory, no transposes."""
        n, layout = len(self.sizes), self.layout
        if n == 1:
            return blocks[0] @ state
        first, *middle, last = blocks
        state = (first @ state.reshape(*lead, layout[0], math.prod(layout[1:]))).reshape(*lead, *layout)
        legs = "abcdefgh"[:n]
        pattern = legs[0] + "z" + legs[1:]  # z: the re/im axis
        for axis, block in enumerate(middle, start=1):
            out = pattern.replace(legs[axis], "y")
            state = torch.einsum(f"...{pattern},...y{legs[axis]}->...{out}", state, block)
        return (state.reshape(*lead, math.prod(layout[:-1]), layout[-1]) @ last).reshape(*lead, *layout)

    def _swap(self, state: torch.Tensor) -> torch.Tensor:
        """(re, im) -> (im, re)."""
        return state.index_select(-len(self.sizes), self.swap_index)

    def run(self, gates: list[torch.Tensor], data: torch.Tensor) -> torch.Tensor:
        """<Z_i> (tokens, r) of the circuit with prepared ``gates`` and angles ``data`` (tokens, r).

        The per-token encoding blocks of all layers are built in one go, the first wall broadcasts
        |0...0> over the tokens, and a phase is ``state * c + swap(state) * s``."""
        lead = (-1,)
        state = self.initial.expand(data.shape[0], *self.layout)  # |0...0> for every token
        angles = data.unsqueeze(-2) + gates[0]  # (tokens, layers, r)
        encodings = self._walls(angles, (*lead, self.depth))  # per chunk (*lead, layers, a, a)
        per_layer = 4 + len(self.chunks)
        for layer in range(self.depth):
            cos1, sin1, *blocks, cos2, sin2 = gates[1 + layer * per_layer : 1 + (layer + 1) * per_layer]
            state = self._apply_wall(state, [encoding.select(-3, layer) for encoding in encodings], lead)
            state = state * cos1 + self._swap(state) * sin1
            state = self._apply_wall(state, blocks, lead)
            state = state * cos2 + self._swap(state) * sin2
        state = self._apply_wall(state, gates[1 + self.depth * per_layer :], lead)
        probabilities = state.square().sum(-len(self.sizes)).reshape(*lead, 2**self.n_qubits)
        return probabilities @ self.signs

    def forward(self, weights: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        return self.run(self.prepare(weights), data)
