"""The trained QTHA circuits compiled for inference: a state matrix multiplied from both sides.

Why a second form of the circuit the model was trained with: generating one token runs every
adapted layer's circuit once, and ONNX Runtime's cost for such tiny tensors is per operation
(about 1-3 us each), not per number. The training form (:class:`~qcompress.methods.qtha_circuit.
QthaStatevector`) spends ~22 operations per circuit layer, half of them reshapes between views of
its chunked state; this form spends 12 and no more arithmetic.

Layout: the 2^r amplitudes of a token as (re/im, c1, c2) matrices: rows index the first
h = r - r//2 qubits, columns the other r//2. An RY wall A (x) B on the two halves is
``A @ V @ B^T`` (both matmuls broadcast over tokens, members and re/im), and a phase exp(i*phi)
is ``V * [cos, cos] + swap(V) * [-sin, sin]`` with ``swap`` exchanging re and im. Per circuit
layer: per-token left and right blocks, phase, constant left and right blocks, phase.
"""

from __future__ import annotations

import math

import torch

from qcompress.backends.base import z_signs
from qcompress.methods.qtha_circuit import GateSchedule, rotation_basis


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
    """``forward(angles (tokens, M, r)) -> <Z> (tokens, M, r)`` for M circuits of the same shape with constant gates."""

    def __init__(self, schedules: list[GateSchedule], n_qubits: int) -> None:
        super().__init__()
        self.n_qubits, self.n_members, self.depth = n_qubits, len(schedules), schedules[0].walls.shape[0]
        self.split = n_qubits - n_qubits // 2  # qubits on the row side; the column side may be empty (r = 1)
        c1, c2 = 2**self.split, 2 ** (n_qubits - self.split)
        self.rows, self.columns = c1, c2

        members = [self._constants(schedule) for schedule in schedules]
        for name in members[0]:  # stacked on a member axis; blocks are (M, 1, a, a) so they broadcast over re/im
            self.register_buffer(name, torch.stack([member[name] for member in members]).float().contiguous())
        self.register_buffer("swap_index", torch.tensor([1, 0]))
        initial = torch.zeros(2, c1, c2)
        initial[0, 0, 0] = 1.0  # |0...0>
        self.register_buffer("initial", initial)
        signs = z_signs(n_qubits, torch.float32).reshape(1, c1 * c2, n_qubits).expand(2, -1, -1)
        self.register_buffer("signs", signs.reshape(2 * c1 * c2, n_qubits).contiguous())  # summed over re and im
        # per-token encoding walls: angles -> sums of half angles -> cos, sin -> each side's block (see trig_expansion)
        sides = {"left": range(self.split), "right": range(self.split, n_qubits)}
        patterns = [trig_expansion(len(qubits)) for qubits in sides.values()]
        sums = torch.zeros(n_qubits, sum(e.shape[1] for e, _ in patterns), dtype=torch.float64)
        column = 0
        for qubits, (signs_e, _) in zip(sides.values(), patterns):
            sums[qubits.start : qubits.stop, column : column + signs_e.shape[1]] = signs_e / 2
            column += signs_e.shape[1]
        self.register_buffer("angle_sums", sums.float())  # (r, P): P = 2^(h-1) + 2^(k-1) sums of +-half angles
        column = 0
        for (side, qubits), (signs_e, coefficients) in zip(sides.items(), patterns):
            width = signs_e.shape[1]
            blocks = coefficients @ rotation_basis(len(qubits), transpose=side == "right")  # (2*width, a*a)
            projection = torch.zeros(2 * sums.shape[1], blocks.shape[1], dtype=torch.float64)
            projection[column : column + width] = blocks[:width]  # the cos features of this side's sums
            projection[sums.shape[1] + column : sums.shape[1] + column + width] = blocks[width:]  # and the sin ones
            column += width
            if len(qubits):
                self.register_buffer(f"encoding_{side}", projection.float())

    def _constants(self, schedule: GateSchedule) -> dict[str, torch.Tensor]:
        """One circuit's gates in this layout (float64 in, so the trigonometry costs no precision)."""
        shape = (1, self.rows, self.columns)

        def wall(angles: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
            return {f"{prefix}_left": ry_wall(angles[: self.split]).unsqueeze(0),
                    f"{prefix}_right": ry_wall(angles[self.split :]).T.unsqueeze(0)}

        def phase(phi: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
            cos, sin = torch.cos(phi).reshape(shape), torch.sin(phi).reshape(shape)
            return {f"{prefix}_cos": torch.cat([cos, cos]), f"{prefix}_sin": torch.cat([-sin, sin])}

        constants = {"offsets": schedule.offsets}
        for layer in range(self.depth):
            constants |= phase(schedule.forward_phases[layer], f"forward_{layer}")
            constants |= wall(schedule.walls[layer], f"wall_{layer}")
            constants |= phase(schedule.backward_phases[layer], f"backward_{layer}")
        return constants | wall(schedule.final_wall, "final")

    def _encodings(self, features: torch.Tensor, side: str, size: int) -> tuple[torch.Tensor, ...]:
        """Per layer, the (tokens, M, 1, a, a) blocks of one side of the encoding walls (a = ``size``)."""
        blocks = (features @ getattr(self, f"encoding_{side}")).reshape(-1, self.n_members, self.depth, size, size)
        return blocks.split(1, dim=2)  # one Split node; each piece already has the broadcast axis for re/im

    def _phase(self, state: torch.Tensor, name: str) -> torch.Tensor:
        return state * getattr(self, f"{name}_cos") + state.index_select(-3, self.swap_index) * getattr(self, f"{name}_sin")

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        sums = (angles.unsqueeze(-2) + self.offsets) @ self.angle_sums  # (tokens, M, L, P)
        features = torch.cat([torch.cos(sums), torch.sin(sums)], -1)
        lefts = self._encodings(features, "left", self.rows)
        rights = self._encodings(features, "right", self.columns) if self.columns > 1 else None
        state = self.initial
        for layer in range(self.depth):
            state = lefts[layer] @ state
            if rights is not None:
                state = state @ rights[layer]
            state = self._phase(state, f"forward_{layer}")
            state = getattr(self, f"wall_{layer}_left") @ state @ getattr(self, f"wall_{layer}_right")
            state = self._phase(state, f"backward_{layer}")
        state = self.final_left @ state @ self.final_right
        return state.square().reshape(-1, self.n_members, 2 * self.rows * self.columns) @ self.signs
