"""The QPA ansatz (ICLR 2025): layers of RY rotations followed by a CNOT ladder.

RY and CNOT are both real, so the whole state stays real; backends exploit that to simulate in a
real dtype at half the cost of complex arithmetic.
"""

from __future__ import annotations

import cirq
import sympy

from qcompress.circuits.base import Ansatz
from qcompress.errors import InputError


def build_qpa_ansatz(n_qubits: int, depth: int) -> Ansatz:
    """``depth`` blocks of [RY(theta) on every qubit, CNOT (0,1),(1,2),...,(N-2,N-1)] acting on |0..0>."""
    if n_qubits < 1 or depth < 1:
        raise InputError(f"QPA ansatz needs n_qubits >= 1 and depth >= 1, got n_qubits={n_qubits}, depth={depth}")
    qubits = tuple(cirq.LineQubit.range(n_qubits))
    symbols = tuple(sympy.Symbol(f"theta_{layer}_{q}") for layer in range(depth) for q in range(n_qubits))
    circuit = cirq.Circuit()
    for layer in range(depth):
        circuit.append(
            (cirq.ry(symbols[layer * n_qubits + q]).on(qubits[q]) for q in range(n_qubits)),
            strategy=cirq.InsertStrategy.NEW_THEN_INLINE,
        )
        for q in range(n_qubits - 1):
            circuit.append(cirq.CNOT(qubits[q], qubits[q + 1]), strategy=cirq.InsertStrategy.NEW)
    return Ansatz(name="qpa", circuit=circuit, qubits=qubits, weight_symbols=symbols)
