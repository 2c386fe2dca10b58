"""The RY–RZ hardware-efficient ansatz: two rotation angles per qubit and block, a CNOT ladder, a final RY wall.

QPA's own ansatz uses RY only, so its state stays real and its 2^N probabilities come from a
real unit vector. Adding RZ makes the amplitudes complex: the same N*L-block circuit reaches a
larger set of distributions with 2*N*L + N angles, the direction in which the circuit's share of a
generator's parameters grows (issue 21). Backends detect that the state is complex and simulate
it in a complex dtype. The final RY wall is what makes every angle count: without it the last
block's RZ phases pass the CNOT ladder as phases of basis states, which Z-basis probabilities
cannot see, and N angles would never receive a gradient.
"""

from __future__ import annotations

import cirq
import sympy

from qcompress.circuits.base import Ansatz
from qcompress.errors import InputError


def build_ry_rz_ansatz(n_qubits: int, depth: int) -> Ansatz:
    """``depth`` blocks of [RY(theta) then RZ(phi) on every qubit, CNOT (0,1),...,(N-2,N-1)] on |0..0>, then RY(omega) on every qubit."""
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
    final = [sympy.Symbol(f"omega_{q}") for q in range(n_qubits)]
    symbols += final
    circuit.append((cirq.ry(w).on(q) for w, q in zip(final, qubits)), strategy=cirq.InsertStrategy.NEW_THEN_INLINE)
    return Ansatz(name="ry-rz", circuit=circuit, qubits=qubits, weight_symbols=tuple(symbols))
