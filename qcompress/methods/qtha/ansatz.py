"""The QTHA ansatz: an r-qubit data re-uploading circuit run once per token inside each adapter.

Each of the ``depth`` layers is: RY(a_i) on qubit i (the token's adapter activations, a data
symbol reused by every layer), a ring of trainable CRZ (control i -> target i+1), trainable RY on
every qubit, a ring of trainable CRZ (control i -> target i-1), trainable RY on every qubit. The
readout is <Z_i> on every qubit. The weight symbols are laid out layer by layer in exactly that
gate order, so the plain-torch simulator (:mod:`qcompress.methods.qtha.circuit`) and any backend
read the same flat weight vector.
"""

from __future__ import annotations

import cirq
import sympy

from qcompress.circuits.base import Ansatz
from qcompress.errors import InputError

#: largest r simulated as a dense state vector per token (2^r amplitudes for every token of a batch)
MAX_QUBITS = 12


def ring_pairs(n_qubits: int, step: int) -> list[tuple[int, int]]:
    """(control, target) pairs i -> i+step (mod r); empty for one qubit, which has no pair to entangle."""
    if n_qubits < 2:
        return []
    return [(q, (q + step) % n_qubits) for q in range(n_qubits)]


def weights_per_layer(n_qubits: int) -> int:
    """Two CRZ rings and two RY walls: the trainable angles of one layer."""
    return 2 * len(ring_pairs(n_qubits, 1)) + 2 * n_qubits


def check_size(n_qubits: int, depth: int) -> None:
    if n_qubits < 1 or depth < 1:
        raise InputError(f"QTHA circuit needs rank r >= 1 and layers >= 1, got r={n_qubits}, layers={depth}")
    if n_qubits > MAX_QUBITS:
        raise InputError(
            f"QTHA rank r={n_qubits} means {n_qubits} qubits per token (2^{n_qubits} amplitudes each), above the "
            f"simulation limit of {MAX_QUBITS}: choose --rank {MAX_QUBITS} or less"
        )


def build_qtha_ansatz(n_qubits: int, depth: int) -> Ansatz:
    """The per-token QTHA circuit with data symbols ``a_i`` and weight symbols ``w_{layer}_{k}``."""
    check_size(n_qubits, depth)
    qubits = tuple(cirq.LineQubit.range(n_qubits))
    data = tuple(sympy.Symbol(f"a_{q}") for q in range(n_qubits))
    weights: list[sympy.Symbol] = []
    circuit = cirq.Circuit()

    def symbol(layer: int) -> sympy.Symbol:
        weights.append(sympy.Symbol(f"w_{layer}_{len(weights) % weights_per_layer(n_qubits)}"))
        return weights[-1]

    for layer in range(depth):
        circuit.append(cirq.Moment(cirq.ry(data[q]).on(qubits[q]) for q in range(n_qubits)))
        for step in (1, -1):
            for control, target in ring_pairs(n_qubits, step):
                circuit.append(cirq.rz(symbol(layer)).controlled().on(qubits[control], qubits[target]),
                               strategy=cirq.InsertStrategy.NEW)
            circuit.append(cirq.Moment(cirq.ry(symbol(layer)).on(q) for q in qubits))
    return Ansatz(name="qtha", circuit=circuit, qubits=qubits, weight_symbols=tuple(weights), data_symbols=data)
