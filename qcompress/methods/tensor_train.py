"""Tensor-train (MPO) linear maps: a dense (in x out) matrix stored as a chain of small cores.

Core k has shape (bond_{k-1}, in_k, out_k, bond_k) with bond_0 = bond_K = 1, and the dense matrix
is W[(i_1..i_K), (j_1..j_K)] = core_1[:, i_1, j_1, :] @ ... @ core_K[:, i_K, j_K, :]. Dimensions are
factorised automatically (balanced prime factors, so any size works; a prime size gets one large
factor), and each inner bond is capped at what the cores on either side can carry, so the
parameter count is exact and no core holds redundant numbers. Training contracts the cores with
plain torch (one einsum chain per forward); the deployed model gets the dense matrix from quimb's
MPO contraction, and tests check the two agree.
"""

from __future__ import annotations

import math

import torch


def prime_factors(n: int) -> list[int]:
    factors, p = [], 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return factors + ([n] if n > 1 else [])


def factorize(n: int, parts: int) -> tuple[int, ...]:
    """``n`` as ``parts`` factors, as balanced as greedy assignment of its primes allows, largest first."""
    factors = [1] * parts
    for prime in sorted(prime_factors(n), reverse=True):
        factors[factors.index(min(factors))] *= prime
    return tuple(sorted(factors, reverse=True))


def bond_dimensions(in_dims: tuple[int, ...], out_dims: tuple[int, ...], bond: int) -> tuple[int, ...]:
    """(1, b_1, ..., b_{K-1}, 1) with each b_k <= bond and <= the dimension on either side of the cut."""
    sizes = [i * o for i, o in zip(in_dims, out_dims)]
    inner = [min(bond, math.prod(sizes[: k + 1]), math.prod(sizes[k + 1 :])) for k in range(len(sizes) - 1)]
    return (1, *inner, 1)


class TTLinear(torch.nn.Module):
    """``x @ W`` with W (in_features x out_features) in tensor-train form, no bias.

    ``zero_last`` starts the last core at zero (so W = 0 and the adapter starts at the base model);
    otherwise cores are Gaussian with a spread chosen so W's entries have variance 1/in_features.
    """

    def __init__(self, in_features: int, out_features: int, cores: int, bond: int, *, zero_last: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.in_dims, self.out_dims = factorize(in_features, cores), factorize(out_features, cores)
        self.bonds = bond_dimensions(self.in_dims, self.out_dims, bond)
        paths = math.prod(self.bonds)  # number of bond-index paths summed into one dense entry
        std = (1.0 / (in_features * paths)) ** (1.0 / (2 * cores))
        self.cores = torch.nn.ParameterList()
        for k in range(cores):
            shape = (self.bonds[k], self.in_dims[k], self.out_dims[k], self.bonds[k + 1])
            values = torch.randn(shape, generator=generator) * std
            if zero_last and k == cores - 1:
                values.zero_()
            self.cores.append(torch.nn.Parameter(values))

    def n_parameters(self) -> int:
        return sum(core.numel() for core in self.cores)

    def shape_text(self) -> str:
        """E.g. '576=6x6x4x4 -> 256=4x4x4x4, bonds 1-8-8-8-1, 2,912 parameters' for reports."""
        dims = lambda n, d: f"{n}={'x'.join(map(str, d))}"  # noqa: E731
        return (f"{dims(self.in_features, self.in_dims)} -> {dims(self.out_features, self.out_dims)}, "
                f"bonds {'-'.join(map(str, self.bonds))}, {self.n_parameters():,} parameters")

    def dense(self) -> torch.Tensor:
        """The (in_features, out_features) matrix, contracted core by core in torch (autograd intact)."""
        result = self.cores[0].reshape(self.in_dims[0], self.out_dims[0], self.bonds[1])
        for core in self.cores[1:]:
            rows, cols = result.shape[0] * core.shape[1], result.shape[1] * core.shape[2]
            result = torch.einsum("ijb,bklc->ikjlc", result, core).reshape(rows, cols, core.shape[3])
        return result.reshape(self.in_features, self.out_features)

    def dense_quimb(self) -> torch.Tensor:
        """The same matrix from quimb's MPO contraction (used at collapse; an independent path)."""
        import quimb.tensor as qtn

        tensors = []
        for k, core in enumerate(self.cores):
            inds = (f"b{k}", f"i{k}", f"o{k}", f"b{k + 1}")
            tensors.append(qtn.Tensor(core.detach().double(), inds=inds))
        network = qtn.TensorNetwork(tensors)
        order = ["b0", *(f"i{k}" for k in range(len(self.cores))), *(f"o{k}" for k in range(len(self.cores))),
                 f"b{len(self.cores)}"]
        dense = network.contract(output_inds=order, optimize="greedy").data
        return dense.reshape(self.in_features, self.out_features).to(self.cores[0].dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.dense()
