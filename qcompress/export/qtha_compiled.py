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

import torch

from qcompress.backends.base import z_signs
from qcompress.methods.qtha_circuit import GateSchedule, bit_selector, rotation_basis


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
        # per-token encoding: interleaved (cos, sin) of every qubit -> each half's Kronecker weights -> its block
        for side, (first, count) in {"left": (0, self.split), "right": (self.split, n_qubits - self.split)}.items():
            if not count:
                continue
            selector = torch.zeros(2 * n_qubits, count * 2**count, dtype=torch.float64)
            selector[2 * first : 2 * (first + count)] = bit_selector(count)
            self.register_buffer(f"selector_{side}", selector.float())
            self.register_buffer(f"basis_{side}", rotation_basis(count, transpose=side == "right").float())

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

    def _encodings(self, pairs: torch.Tensor, side: str, count: int) -> tuple[torch.Tensor, ...]:
        """Per layer, the (tokens, M, 1, a, a) blocks of one side of the encoding walls, a = 2^count."""
        lead = (-1, self.n_members, self.depth)
        weights = (pairs @ getattr(self, f"selector_{side}")).reshape(*lead, count, 2**count).prod(-2)
        blocks = (weights @ getattr(self, f"basis_{side}")).reshape(*lead, 2**count, 2**count)
        return blocks.split(1, dim=2)  # one Split node; each piece already has the broadcast axis for re/im

    def _phase(self, state: torch.Tensor, name: str) -> torch.Tensor:
        return state * getattr(self, f"{name}_cos") + state.index_select(-3, self.swap_index) * getattr(self, f"{name}_sin")

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        half = (angles.unsqueeze(-2) + self.offsets) * 0.5  # (tokens, M, L, r)
        pairs = torch.stack([torch.cos(half), torch.sin(half)], -1).reshape(-1, self.n_members, self.depth, 2 * self.n_qubits)
        lefts = self._encodings(pairs, "left", self.split)
        rights = self._encodings(pairs, "right", self.n_qubits - self.split) if self.columns > 1 else None
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
