"""The RY–RZ hardware-efficient ansatz: two rotation angles per qubit and block, then a CNOT ladder.

QPA's own ansatz uses RY only, so its state stays real and its 2^N probabilities come from a
real unit vector. Adding RZ makes the amplitudes complex: the same N*L-block circuit reaches a
larger set of distributions with 2*N*L angles, the direction in which the circuit's share of a
generator's parameters grows (issue 21). Backends detect that the state is complex and simulate
it in a complex dtype.
"""

from __future__ import annotations

import cirq
import sympy

from qcompress.circuits.base import Ansatz
from qcompress.errors import InputError


def build_ry_rz_ansatz(n_qubits: int, depth: int) -> Ansatz:
    """``depth`` blocks of [RY(theta) then RZ(phi) on every qubit, CNOT (0,1),...,(N-2,N-1)] acting on |0..0>."""
    if n_qubits < 1 or depth < 1:
        raise InputError(f"RY-RZ ansatz needs n_qubits >= 1 and depth >= 1, got n_qubits={n_qubits}, depth={depth}")
    qubits = tuple(cirq.LineQubit.range(n_qubits))
    symbols: list[sympy.Symbol] = []
    circuit = cirq.Circuit()
    for layer in range(depth):
        thetas = [sympy.Symbol(f"theta_{layer}_{q}") for q in range(n_qubits)]
        phis = [sympy.Symbol(f"phi_{layer}_{q}") for q in range(n_qubits)]
        symbols += [*thetas, *phis]
        circuit.append((cirq.ry(t).on(q) for t, q in zip(thetas, qubits)), strategy=cirq.InsertStrategy.NEW_THEN_INLINE)
        circuit.append((cirq.rz(p).on(q) for p, q in zip(phis, qubits)), strategy=cirq.InsertStrategy.NEW_THEN_INLINE)
        for q in range(n_qubits - 1):
            circuit.append(cirq.CNOT(qubits[q], qubits[q + 1]), strategy=cirq.InsertStrategy.NEW)
    return Ansatz(name="ry-rz", circuit=circuit, qubits=qubits, weight_symbols=tuple(symbols))
