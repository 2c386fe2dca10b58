"""The strongest plain-PyTorch simulation of the QPA circuit we know: the "practical limit" reference.

RY layers are applied as Kronecker blocks of up to 4 qubits, each one GEMM on a transposed view so
the qubit order rotates and no separate permute is needed; the first layer acting on |0..0> is
built directly as an outer product; each CNOT ladder is one precomputed gather (a prefix-XOR
permutation of basis indices). It is specific to the QPA ansatz, which is exactly why it is a
fair bound on what a general backend (quimb) can hope for.
"""

from __future__ import annotations

import torch

from qcompress.backends.absorption import kron_all
from qcompress.backends.base import basis_bits


def ry_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) real RY(theta) matrices."""
    cos, sin = torch.cos(angles / 2), torch.sin(angles / 2)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


class Permute(torch.autograd.Function):
    """x[perm] whose backward is the inverse gather, not the scatter-add autograd would use."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, perm: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.inverse = inverse
        return x[perm]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad[ctx.inverse], None, None


class StateVectorQPA:
    """Plain-torch simulation of the QPA ansatz (real amplitudes), tuned for speed."""

    def __init__(self, n_qubits: int, depth: int, block: int = 4, device: str = "cpu") -> None:
        self.n, self.depth = n_qubits, depth
        self.blocks = [min(block, n_qubits - start) for start in range(0, n_qubits, block)]
        bits = basis_bits(n_qubits)
        prefix_xor = torch.cumsum(bits, dim=1) % 2  # CNOT ladder: y_k = x_0 ^ ... ^ x_k
        image = (prefix_xor * 2 ** torch.arange(n_qubits - 1, -1, -1)).sum(1)
        gather = torch.empty_like(image)
        gather[image] = torch.arange(2**n_qubits)  # new_state[y] = old_state[x(y)]
        self.inverse = image.to(device)  # grad_old[x] = grad_new[y(x)]
        self.gather = gather.to(device)

    def _layer_krons(self, mats: torch.Tensor) -> list[list[torch.Tensor]]:
        """For layers 1.., the (2^b, 2^b) Kronecker block of each qubit block, built batched per block size."""
        starts = [sum(self.blocks[:i]) for i in range(len(self.blocks))]
        by_size: dict[int, list[int]] = {}
        for i, size in enumerate(self.blocks):
            by_size.setdefault(size, []).append(i)
        built: dict[int, torch.Tensor] = {}
        for size, members in by_size.items():
            picked = torch.stack([mats[1:, starts[i] : starts[i] + size] for i in members], 1)  # (L-1, B, size, 2, 2)
            krons = kron_all(picked)
            for j, i in enumerate(members):
                built[i] = krons[:, j]
        return [[built[i][layer] for i in range(len(self.blocks))] for layer in range(self.depth - 1)]

    def amplitudes(self, theta: torch.Tensor) -> torch.Tensor:
        mats = ry_matrices(theta.reshape(self.depth, self.n))
        krons = self._layer_krons(mats)
        state = mats[0, 0, :, 0]
        for q in range(1, self.n):
            state = (state[:, None] * mats[0, q, :, 0][None, :]).reshape(-1)
        state = Permute.apply(state, self.gather, self.inverse)
        for layer_krons in krons:
            for size, kron in zip(self.blocks, layer_krons):
                # rows of the view are the block's qubits (most significant); the product is stored
                # with that block least significant, which rotates qubit order by `size`
                state = (state.view(2**size, -1).t() @ kron.t()).reshape(-1)
            state = Permute.apply(state, self.gather, self.inverse)
        return state

    def probabilities(self, theta: torch.Tensor) -> torch.Tensor:
        amplitudes = self.amplitudes(theta)
        return amplitudes * amplitudes
