"""The one description of a parametrised circuit that every backend and generator consumes.

An :class:`Ansatz` is a plain Cirq circuit plus the ordering of its symbols: backends receive
angles as tensors, so the position of each sympy symbol in the weight (or data) vector has to be
fixed once, here, rather than re-derived (and possibly re-ordered) by every consumer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cirq
import sympy
import torch

from qcompress.errors import InputError


@dataclass(frozen=True)
class Ansatz:
    """A Cirq circuit whose trainable angles are ``weight_symbols`` and per-sample inputs are ``data_symbols``."""

    name: str
    circuit: cirq.Circuit
    qubits: tuple[cirq.LineQubit, ...]
    weight_symbols: tuple[sympy.Symbol, ...]
    data_symbols: tuple[sympy.Symbol, ...] = ()
    #: the basis its probabilities are read in: "z" (computational) or "x" (a Hadamard on every qubit first)
    basis: str = "z"

    @property
    def n_qubits(self) -> int:
        return len(self.qubits)


def init_weights(ansatz: Ansatz, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Angles uniform in [-pi, pi] from a private generator, so the global RNG state never matters."""
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(len(ansatz.weight_symbols), generator=generator, dtype=torch.float64)
    return ((2.0 * uniform - 1.0) * math.pi).to(dtype)


MEASUREMENT_BASES = ("z", "x")


def measured_in(ansatz: Ansatz, basis: str) -> Ansatz:
    """The same state read in ``basis``: for "x" a Hadamard on every qubit is appended, so the basis
    probabilities of the result are the state's X-basis probabilities, which depend on the relative
    signs and phases of the amplitudes that Z-basis probabilities discard."""
    if basis not in MEASUREMENT_BASES:
        raise InputError(f"unknown measurement basis {basis!r}; choose one of {'|'.join(MEASUREMENT_BASES)}")
    if basis == ansatz.basis:
        return ansatz
    if ansatz.basis != "z":
        raise InputError(f"ansatz {ansatz.name!r} is already read in the {ansatz.basis} basis; build it again to change")
    circuit = ansatz.circuit + cirq.Circuit(cirq.H.on_each(*ansatz.qubits))
    return replace(ansatz, circuit=circuit, basis=basis)
