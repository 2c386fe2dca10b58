"""The QTHA circuit as a plain-torch state vector: the form it is trained in, M circuits at once.

Why not the quimb backend in the training loop: the circuit is tiny (r qubits) but runs once per
token in every adapted layer (512 tokens x 60 layers per step on SmolLM2), where a dense state of
2^r amplitudes per token and a handful of batched matmuls per layer beat a tensor-network
contraction. The quimb backend stays the checked reference (tests compare both, and both against
``cirq.Simulator``).

Why this layout: the circuit's cost per step is the number and size of the kernels it launches
(thousands of tiny ones per step was the first form's problem, worst on a GPU). Sibling layers' circuits (M members, e.g. ``q_proj`` and
``v_proj``) run stacked, and the state of all tokens and members is one complex tensor
(M, tokens, d_1, ..., d_k): the r qubits split into chunks of at most ``CHUNK_QUBITS``, chunk j
of dimension d_j. A CRZ ring is a diagonal phase, one complex product with a precomputed
exp(i*phi) (M, 1, d_1, ..., d_k). An RY wall is a Kronecker product of real chunk blocks, applied
on the real view (re/im interleaved last) as one matmul per chunk. A chunk that is not the
innermost axis is multiplied from the left. A trained (constant) wall's innermost chunk is
multiplied from the right, its block doubled to act on (amplitude, re/im) pairs: one
(M, rows, 2d) @ (M, 2d, 2d) matmul for all tokens. A per-token wall instead moves its innermost
axis to the front (one copy) and multiplies it from the left too, so the chunk order rotates at
every encoding. Why: a doubled per-token block is twice the arithmetic and a 4x larger block to
build and differentiate, and its matmul's backward was the costliest kernel of a step (with it,
a circuit's forward and backward took ~7% longer on the CPU). Each layer's second RY wall is
merged into the next layer's data encoding, and the first layer's encoding of |0...0> is a product state (the
Kronecker weights themselves): per circuit layer about 9 kernels (two build the per-token
blocks, four matmuls, one copy, two phase products) for every member and token together, where
the first form spent ~22 per member. All constants are non-persistent buffers built on the
weights' device, nothing is read back to the host, and no Python branch depends on a tensor's
values, so a GPU step never waits on the host. Tried and measured slower on the CPU: chunks of 3
or 2 qubits (smaller, less efficient matmuls); a real layout with re/im between the chunks, where
no block is doubled but each phase product becomes a swap and two products (4-8x the complex
product's time); running the tokens in cache-sized blocks (more kernels, no faster); ``torch.compile``
of the whole circuit (r 8, L 8, 2 members x 512 tokens, one thread: 0.20-0.25 against 0.23-0.29 s per
forward+backward after a 62 s compile, since inductor generates no code for complex operators). Not tried,
by per-kernel timings: rotating at the constant walls too (a copy and a second doubled matmul
cost about what the broadcast matmul costs).
The deployed model runs the same circuits with constant gates in another layout, built for
ONNX Runtime's per-operation cost (:mod:`qcompress.methods.qtha.compiled`), from :meth:`QthaStatevector.schedule`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from qcompress.backends.base import basis_bits, z_signs
from qcompress.methods.qtha.ansatz import check_size, ring_pairs, weights_per_layer

CHUNK_QUBITS = 4

#: :meth:`QthaStatevector.prepare`'s gates: data offsets, each layer's two ring phases, each constant wall's blocks
PreparedGates = tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]], list[list[torch.Tensor]]]


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


def pair_basis(n_qubits: int) -> torch.Tensor:
    """(2^k, 4^(k+1)): :func:`rotation_basis` (transposed) with each block Kronecker-multiplied by I_2.

    Why: the state's real view keeps (re, im) interleaved as its last axis, so a wall's last
    chunk, applied from the right, must act on (amplitude, re/im) pairs: with B^T (x) I_2 it is one
    matmul on the (rows, 2d) view, with no transpose of the state."""
    blocks = rotation_basis(n_qubits, transpose=True).reshape(2**n_qubits, 2**n_qubits, 2**n_qubits)
    identity = torch.eye(2, dtype=torch.float64)
    return torch.stack([torch.kron(block, identity).reshape(-1) for block in blocks])


@dataclass(frozen=True)
class GateSchedule:
    """A circuit's trained angles in the order the state meets them (see :meth:`QthaStatevector.schedule`).

    Shapes are given for one circuit; a stack of M circuits has a leading member axis on each."""

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
    """``forward(weights, data) -> <Z_i>`` for one circuit or M stacked ones, weights in the ansatz's symbol order.

    One circuit: weights (W,), data (tokens, r) -> (tokens, r). M circuits of the same shape
    (sibling layers): weights (M, W), data (tokens, M, r) -> (tokens, M, r)."""

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
        # <Z_i> from the real view's squares in the last layer's chunk order: each sign twice, for re and im
        signs = z_signs(n_qubits, torch.float32).reshape(*self.sizes, n_qubits)
        signs = signs.permute(*self.order(self.orientation(depth - 1)), n_chunks).reshape(-1, n_qubits)
        self.register_buffer("signs", signs.repeat_interleave(2, 0).contiguous(), persistent=False)
        for index, size in enumerate(self.chunks):
            self.register_buffer(f"left_basis_{index}", rotation_basis(size, transpose=False).float(), persistent=False)
            self.register_buffer(f"pair_basis_{index}", pair_basis(size).float(), persistent=False)

    def orientation(self, layer: int) -> int:
        """How many times the chunk axes have been rotated when ``layer``'s rings and constant wall run."""
        return layer % len(self.sizes)

    def order(self, orientation: int) -> list[int]:
        """The chunk at each axis position of the state, outermost first: rotation moves the innermost to the front."""
        return [(position - orientation) % len(self.sizes) for position in range(len(self.sizes))]

    def schedule(self, weights: torch.Tensor) -> GateSchedule:
        """The trained angles regrouped as the circuit applies them, each layer's second RY wall merged forward.

        RY(w) RY(a) = RY(w + a) on the same qubit, so a layer's second wall becomes the next layer's
        data offset (zero in the first layer) and per layer the state sees one per-token wall, a
        phase, one constant wall and a phase; the last layer's second wall stays as the final wall.
        ``weights`` is (W,) or (M, W); every field gets the same leading axes."""
        rings = self.forward_ring.shape[1]
        layers = weights.reshape(*weights.shape[:-1], self.depth, -1)
        second_wall = layers[..., -self.n_qubits :]
        return GateSchedule(
            offsets=torch.cat([torch.zeros_like(second_wall[..., :1, :]), second_wall[..., :-1, :]], -2),
            forward_phases=layers[..., :rings] @ self.forward_ring.T.to(weights.dtype),
            walls=layers[..., rings : rings + self.n_qubits],
            backward_phases=layers[..., rings + self.n_qubits : -self.n_qubits] @ self.backward_ring.T.to(weights.dtype),
            final_wall=second_wall[..., -1, :],
        )

    def prepare(self, weights: torch.Tensor) -> PreparedGates:
        """The trained gates of M circuits (weights (M, W)) as the state meets them, built in a few batched ops.

        Returns the data offsets (M, layers, r); per layer its two ring phases exp(i*phi), each
        (M, 1, d, ..., d) in that layer's chunk order; and per constant wall (the final one last)
        its blocks in its chunk order (:meth:`_constant_blocks`). Training calls this every step
        (the gates depend on the trained angles); all of it is a few small tensors per member."""
        plan = self.schedule(weights)
        angles = torch.stack([plan.forward_phases, plan.backward_phases], 1)  # (M, 2 rings, L, 2^r)
        phases = torch.polar(torch.ones_like(angles), angles).reshape(*angles.shape[:3], *self.sizes)
        walls = torch.cat([plan.walls, plan.final_wall.unsqueeze(-2)], -2)  # (M, L + 1, r)
        kron = self._kron_weights(walls)
        per_layer = []
        for layer, ring in enumerate(phases.unbind(2)):  # ring: (M, 2, d_1, ..., d_k)
            chunk_axes = [2 + chunk for chunk in self.order(self.orientation(layer))]
            forward_phase, backward_phase = ring.permute(0, 1, *chunk_axes).unsqueeze(2).contiguous().unbind(1)
            per_layer.append((forward_phase, backward_phase))
        constant = [self._constant_blocks([w[:, wall] for w in kron], self.orientation(min(wall, self.depth - 1)))
                    for wall in range(self.depth + 1)]
        return plan.offsets, per_layer, constant

    def _kron_weights(self, angles: torch.Tensor) -> list[torch.Tensor]:
        """Per chunk, the Kronecker product of the (cos, sin) of its half angles, (..., d_j) from (..., r).

        That is RY(angles) applied to |0...0> (the first layer's product state), and the weights of
        the chunk's wall block in the basis of :func:`rotation_basis`. Built by outer products, not
        a product reduction, whose backward checks its input for zeros on the host."""
        half = angles / 2
        pairs = torch.stack([torch.cos(half), torch.sin(half)], -1)  # (..., r, 2)
        weights = []
        for lo, hi in self.bounds:
            kron = pairs[..., lo, :]
            for qubit in range(lo + 1, hi):
                kron = (kron.unsqueeze(-1) * pairs[..., qubit, :].unsqueeze(-2)).flatten(-2)
            weights.append(kron)
        return weights

    def _left_block(self, kron: torch.Tensor, chunk: int, position: int) -> torch.Tensor:
        """The (..., d, d) wall block of ``chunk`` for Kronecker weights (..., d), shaped to broadcast over the
        chunks before ``position`` (the prefix axis of :meth:`_left`)."""
        size = self.sizes[chunk]
        block = (kron @ getattr(self, f"left_basis_{chunk}")).unflatten(-1, (size, size))
        return block.unsqueeze(-3) if position else block

    def _constant_blocks(self, kron: list[torch.Tensor], orientation: int) -> list[torch.Tensor]:
        """A constant wall's blocks by axis position, from per-chunk weights (M, d_j): the outer chunks'
        (M, 1, [1], d, d), multiplied from the left with every token at once; the innermost chunk's
        doubled (M, 2d, 2d), multiplied from the right on (amplitude, re/im) pairs as one matmul."""
        order = self.order(orientation)
        blocks = [self._left_block(kron[chunk], chunk, position).unsqueeze(1)  # broadcast over the tokens
                  for position, chunk in enumerate(order[:-1])]
        size = self.sizes[order[-1]]
        pair = kron[order[-1]] @ getattr(self, f"pair_basis_{order[-1]}")
        return blocks + [pair.unflatten(-1, (2 * size, 2 * size))]

    def _left(self, state: torch.Tensor, block: torch.Tensor, position: int) -> torch.Tensor:
        """The complex (M, tokens, d, ..., d) state's chunk at axis ``position`` (not the innermost) times ``block``."""
        members, tokens, *sizes = state.shape
        prefix = (math.prod(sizes[:position]),) if position else ()
        real = torch.view_as_real(state).reshape(members, tokens, *prefix, sizes[position], -1)
        return torch.view_as_complex((block @ real).reshape(*state.shape, 2))

    def _constant_wall(self, state: torch.Tensor, blocks: Sequence[torch.Tensor]) -> torch.Tensor:
        """A trained RY wall: the outer chunks from the left, the innermost one from the right (doubled block)."""
        for position, block in enumerate(blocks[:-1]):
            state = self._left(state, block, position)
        members, pair = state.shape[0], blocks[-1].shape[-1]
        real = torch.view_as_real(state).reshape(members, -1, pair) @ blocks[-1]
        return torch.view_as_complex(real.reshape(*state.shape, 2))

    def _encoding_wall(self, state: torch.Tensor, kron: Sequence[torch.Tensor], orientation: int) -> torch.Tensor:
        """A per-token RY wall (weights ``kron`` per chunk, (M, tokens, d_j)), every chunk from the left.

        The outer chunks are multiplied in place; then the innermost axis is moved to the front
        (one copy of the state, the chunk order rotates) and multiplied there too. Why: a per-token
        block multiplied from the right would have to be doubled for the (re, im) pairs, twice
        the arithmetic and a block 4x the size to build, differentiate and keep in memory, which
        cost more than the copy."""
        order = self.order(orientation)
        for position, chunk in enumerate(order[:-1]):
            state = self._left(state, self._left_block(kron[chunk], chunk, position), position)
        state = state.movedim(-1, 2).contiguous()
        return self._left(state, self._left_block(kron[order[-1]], order[-1], 0), 0)

    def run(self, gates: PreparedGates, data: torch.Tensor) -> torch.Tensor:
        """<Z_i> (M, tokens, r) of M circuits with prepared ``gates`` and angles ``data`` (M, tokens, r).

        Every layer's encoding weights come from one batch of ops; the first layer's encoding of
        |0...0> is their outer product (real until the first ring), later layers' are per-token
        blocks. Per circuit layer: encoding wall, ring phase, constant wall, ring phase."""
        offsets, rings, constant = gates
        members, tokens = data.shape[:2]
        angles = data.unsqueeze(0) + offsets.transpose(0, 1).unsqueeze(2)  # (L, M, tokens, r)
        # per layer by unbind, not indexing: each indexed slice's backward would write a zero-filled
        # gradient of the whole stack (quadratic in the depth), unbind's stacks them once. The
        # per-token blocks are built layer by layer, right before use: all at once they are ~7x the
        # state, written and (in backward) stacked again in memory instead of cache
        per_layer = list(zip(*(kron.unbind(0) for kron in self._kron_weights(angles))))
        state = per_layer[0][0]
        for index, kron in enumerate(per_layer[0][1:], start=1):  # product state |0...0> after the first encoding
            state = state.unsqueeze(-1) * kron.reshape(members, tokens, *([1] * index), self.sizes[index])
        for layer in range(self.depth):
            if layer:
                state = self._encoding_wall(state, per_layer[layer], self.orientation(layer - 1))
            forward_phase, backward_phase = rings[layer]
            state = state * forward_phase  # real * complex in the first layer
            state = self._constant_wall(state, constant[layer])
            state = state * backward_phase
        state = self._constant_wall(state, constant[self.depth])
        return torch.view_as_real(state).square().reshape(members, tokens, -1) @ self.signs

    def forward(self, weights: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        single = weights.dim() == 1
        if single:
            weights, data = weights.unsqueeze(0), data.unsqueeze(1)
        expectations = self.run(self.prepare(weights), data.transpose(0, 1)).transpose(0, 1)
        return expectations.squeeze(1) if single else expectations
