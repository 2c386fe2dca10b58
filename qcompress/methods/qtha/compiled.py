"""The trained QTHA circuits compiled for inference: a state matrix multiplied from both sides.

Why a second form of the circuit the model was trained with: generating one token runs every
adapted layer's circuit once, and ONNX Runtime's cost for such tiny tensors is per operation
(1-4 us each inside a large model), not per number. The training form
(:class:`~qcompress.methods.qtha.circuit.QthaStatevector`) works on complex states with autograd and recomputation in mind (8
kernels per circuit layer, but complex tensors, which ONNX lacks); this form spends 8 real ONNX
operations per layer and no more arithmetic.

Layout: the 2^r amplitudes of a token as (re/im, tokens, members, c1, c2): rows index the first
h = r - r//2 qubits, columns the other r//2. An RY wall A (x) B on the two halves is
``A @ V @ B^T`` (both matmuls broadcast over the leading axes). A CRZ ring's phase exp(i*phi) is
a 2x2 real map of (re, im) per amplitude, applied as one broadcast product with
[[cos, -sin], [sin, cos]] (a new leading output axis) and one sum over the input axis: no gather.
The state is real until the first ring, so that ring is a single product with [cos, sin]. The
per-token encoding blocks of both sides come from one Cos of sums of half angles and one matmul
(:func:`trig_expansion`); the readout is one matmul with the Z signs and a column of ones, so each
member's affine readout, bias included, is a single matmul downstream.
"""

from __future__ import annotations

import math

import torch

from qcompress.backends.base import z_signs
from qcompress.methods.qtha.circuit import GateSchedule, rotation_basis


def trig_expansion(n_qubits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign patterns E (n, 2^(n-1)) and coefficients C (2^n, 2^n) with kron_q (cos x_q, sin x_q) = [cos(x E), sin(x E)] @ C.

    Why: the Kronecker weights of an RY wall are products of cosines and sines, and a product
    needs a ReduceProd in ONNX, which ONNX Runtime's symbolic shape inference cannot follow (and
    without it the offline fusions of the whole graph are skipped). Product to sum:
    prod_q f_q(x_q) = 2^(1-n) sum over sign patterns eps (eps_0 = +1) of s * cos(eps.x) if the
    number m of sines is even, s * sin(eps.x) if odd, with s = (-1)^floor(m/2) prod_(q in sines) eps_q.
    So the weights are one matmul of the cos and sin of 2^(n-1) sums of angles: linear algebra only."""
    if n_qubits == 0:
        return torch.zeros(0, 0, dtype=torch.float64), torch.ones(0, 1, dtype=torch.float64)
    patterns = torch.tensor(
        [[1.0] + [-1.0 if (j >> (n_qubits - 2 - q)) & 1 else 1.0 for q in range(n_qubits - 1)] for j in range(2 ** (n_qubits - 1))],
        dtype=torch.float64,
    ).T  # (n, 2^(n-1))
    width = patterns.shape[1]
    coefficients = torch.zeros(2 * width, 2**n_qubits, dtype=torch.float64)
    for subset in range(2**n_qubits):
        sines = [q for q in range(n_qubits) if (subset >> (n_qubits - 1 - q)) & 1]
        for j in range(width):
            sign = (-1) ** (len(sines) // 2) * math.prod(patterns[q, j].item() for q in sines)
            coefficients[j + width * (len(sines) % 2), subset] = sign / 2 ** (n_qubits - 1)
    return patterns, coefficients


def ry_wall(angles: torch.Tensor) -> torch.Tensor:
    """Kronecker product of RY(angle) over ``angles`` (first qubit most significant; 1x1 for none)."""
    block = torch.ones(1, 1, dtype=angles.dtype)
    for angle in angles:
        cos, sin = torch.cos(angle / 2), torch.sin(angle / 2)
        block = torch.kron(block, torch.stack([torch.stack([cos, -sin]), torch.stack([sin, cos])]))
    return block


class CompiledQthaCircuit(torch.nn.Module):
    """M circuits of one shape with constant gates: ``forward(angles (tokens, M*r)) -> (tokens, M*(r+1))``.

    Per member the output is <Z_1> ... <Z_r> followed by the state's squared norm (1 up to rounding),
    so an affine readout is one matmul with the bias as that feature's weight. ``sums_map`` and
    :meth:`from_sums` let a caller fold the map from angles to the encoding's angle sums into its
    own input matmul."""

    def __init__(self, schedules: list[GateSchedule], n_qubits: int) -> None:
        super().__init__()
        self.n_qubits, self.n_members, self.depth = n_qubits, len(schedules), schedules[0].walls.shape[0]
        self.split = n_qubits - n_qubits // 2  # qubits on the row side; the column side may be empty (r = 1)
        c1, c2 = 2**self.split, 2 ** (n_qubits - self.split)
        self.rows, self.columns = c1, c2
        members = [self._constants(schedule) for schedule in schedules]
        for name in members[0]:  # stacked on the member axis, which sits just before (c1, c2)
            self.register_buffer(name, torch.stack([member[name] for member in members], -3).float().contiguous())
        start = torch.zeros(c1, c2)
        start[0, 0] = 1.0  # |0...0>: the first encoding wall turns it into its first column times first row
        self.register_buffer("start", start)
        readout = torch.cat([z_signs(n_qubits, torch.float64), torch.ones(c1 * c2, 1, dtype=torch.float64)], 1)
        self.register_buffer("readout", torch.block_diag(*[readout] * self.n_members).float())  # (M*c1*c2, M*(r+1))
        self._encoding_constants(schedules)

    def _encoding_constants(self, schedules: list[GateSchedule]) -> None:
        """angles -> sums of +-half angles (+ the trained offsets) -> cos -> both sides' blocks, see :func:`trig_expansion`.

        The sines are cosines of the sums shifted by pi/2, so one Cos node yields every feature."""
        sides = {"left": range(self.split), "right": range(self.split, self.n_qubits)}
        patterns = [trig_expansion(len(qubits)) for qubits in sides.values()]
        width = sum(signs.shape[1] for signs, _ in patterns)
        sums = torch.zeros(self.n_qubits, width, dtype=torch.float64)
        projections, column = [], 0
        for (side, qubits), (signs, coefficients) in zip(sides.items(), patterns):
            sums[qubits.start : qubits.stop, column : column + signs.shape[1]] = signs / 2
            if len(qubits):
                blocks = coefficients @ rotation_basis(len(qubits), transpose=side == "right")  # (2*terms, a*a)
                projection = torch.zeros(2 * width, blocks.shape[1], dtype=torch.float64)
                projection[column : column + signs.shape[1]] = blocks[: signs.shape[1]]  # cos features of this side
                projection[width + column : width + column + signs.shape[1]] = blocks[signs.shape[1] :]  # sin features
                projections.append(projection)
            column += signs.shape[1]
        # both sides' blocks from one matmul: (2P, c1*c1 + c2*c2), per layer [left | right]
        self.register_buffer("encoding", torch.cat(projections, 1).float())
        doubled = torch.cat([sums, sums], 1)  # (r, 2P): cos and sin halves
        shift = torch.cat([torch.zeros(width), torch.full((width,), math.pi / 2)]).double()
        offsets = torch.stack([s.offsets.double() for s in schedules])  # (M, L, r)
        self.register_buffer("sums_map", torch.block_diag(*[doubled] * self.n_members).float())  # (M*r, M*2P)
        self.register_buffer("sum_offsets", (offsets @ doubled - shift).float())  # (M, L, 2P)

    def _constants(self, schedule: GateSchedule) -> dict[str, torch.Tensor]:
        """One circuit's gates in this layout (float64 in, so the trigonometry costs no precision)."""

        def wall(angles: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
            return {f"{prefix}_left": ry_wall(angles[: self.split]), f"{prefix}_right": ry_wall(angles[self.split :]).T}

        def phase(phi: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
            cos, sin = torch.cos(phi).reshape(self.rows, self.columns), torch.sin(phi).reshape(self.rows, self.columns)
            # (out re/im, in re/im, tokens = 1, c1, c2): re' = cos re - sin im, im' = sin re + cos im
            return {f"{prefix}_phase": torch.stack([torch.stack([cos, -sin]), torch.stack([sin, cos])]).unsqueeze(2)}

        first = torch.stack([torch.cos(schedule.forward_phases[0]), torch.sin(schedule.forward_phases[0])])
        constants = {"forward_0_phase": first.reshape(2, 1, self.rows, self.columns)}  # (re/im, tokens, c1, c2): still real there
        constants |= wall(schedule.walls[0], "wall_0") | phase(schedule.backward_phases[0], "backward_0")
        for layer in range(1, self.depth):
            constants |= phase(schedule.forward_phases[layer], f"forward_{layer}")
            constants |= wall(schedule.walls[layer], f"wall_{layer}")
            constants |= phase(schedule.backward_phases[layer], f"backward_{layer}")
        return constants | wall(schedule.final_wall, "final")

    def _encodings(self, features: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Per layer, the (tokens, M, a, a) blocks of the left and right encoding walls (right: None if r = 1)."""
        members, depth, c1, c2 = self.n_members, self.depth, self.rows, self.columns
        blocks = features @ self.encoding  # (tokens, M, L, c1*c1 + c2*c2)
        if c1 == c2:  # one reshape and one Split node give both sides, alternating
            both = blocks.reshape(-1, members, 2 * depth * c1, c1).split(c1, dim=2)
            return list(both[0::2]), list(both[1::2])
        lefts = blocks[..., : c1 * c1].reshape(-1, members, depth * c1, c1).split(c1, dim=2)
        if c2 == 1:  # r = 1: no column qubits, no right blocks
            return list(lefts), [None] * depth
        rights = blocks[..., c1 * c1 :].reshape(-1, members, depth * c2, c2).split(c2, dim=2)
        return list(lefts), list(rights)

    @staticmethod
    def _kron(left: torch.Tensor, state: torch.Tensor, right: torch.Tensor | None) -> torch.Tensor:
        state = left @ state
        return state if right is None else state @ right

    def _phase(self, state: torch.Tensor, name: str) -> torch.Tensor:
        """exp(i*phi) on the (re/im, ...) state: one broadcast product with the 2x2 maps, one sum over their input axis."""
        return (state * getattr(self, f"{name}_phase")).sum(1)

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        return self.from_sums(angles.reshape(-1, self.n_members * self.n_qubits) @ self.sums_map)

    def from_sums(self, sums: torch.Tensor) -> torch.Tensor:
        """``sums``: (tokens, M*2P), the angles already mapped by ``sums_map`` (offsets not yet added)."""
        members = self.n_members
        features = torch.cos(sums.reshape(-1, members, 1, self.sum_offsets.shape[-1]) + self.sum_offsets)  # (tokens, M, L, 2P)
        lefts, rights = self._encodings(features)
        state = self._kron(lefts[0], self.start, rights[0]) * self.forward_0_phase  # real -> (re/im, tokens, M, c1, c2)
        state = self._kron(self.wall_0_left, state, self.wall_0_right)
        state = self._phase(state, "backward_0")
        for layer in range(1, self.depth):
            state = self._phase(self._kron(lefts[layer], state, rights[layer]), f"forward_{layer}")
            state = self._kron(getattr(self, f"wall_{layer}_left"), state, getattr(self, f"wall_{layer}_right"))
            state = self._phase(state, f"backward_{layer}")
        state = self._kron(self.final_left, state, self.final_right)
        probabilities = state.square().sum(0).reshape(-1, members * self.rows * self.columns)
        return probabilities @ self.readout
