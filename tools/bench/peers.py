"""The simulators a user would otherwise reach for, each wrapped to simulate exactly our QPA ansatz.

Every peer is built from the same Cirq circuit qcompress trains (translated gate by gate by
:func:`gate_sequence`), returns the (2^N,) basis probabilities with qubit 0 most significant, and
keeps autograd where the peer supports it, so the suite can time forward+backward and check each
peer's probabilities against the reference. A peer that cannot be imported is reported with the
import error as "not installed here: ...", never silently dropped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cirq
import numpy as np
import torch

from qcompress.circuits.base import Ansatz

Probabilities = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Gate:
    """One gate of the QPA ansatz: ("ry", qubit, weight index) or ("cnot", control, target)."""

    kind: str
    first: int
    second: int


def gate_sequence(ansatz: Ansatz) -> Iterator[Gate]:
    """The ansatz's operations as RY / CNOT gates on qubit indices; anything else is not a QPA circuit."""
    position = {q: i for i, q in enumerate(ansatz.qubits)}
    weight_index = {s: i for i, s in enumerate(ansatz.weight_symbols)}
    for op in ansatz.circuit.all_operations():
        if isinstance(op.gate, cirq.Ry) and len(op.gate.exponent.free_symbols) == 1:
            (symbol,) = op.gate.exponent.free_symbols
            yield Gate("ry", position[op.qubits[0]], weight_index[symbol])
        elif op.gate == cirq.CNOT:
            yield Gate("cnot", position[op.qubits[0]], position[op.qubits[1]])
        else:
            raise ValueError(f"peer simulators here only translate RY(symbol) and CNOT, got {op}")


def unavailable(module: str) -> str | None:
    """None if ``module`` imports, else the one-line reason it does not (for the report)."""
    try:
        importlib.import_module(module)
    except Exception as error:  # any import failure (missing module, broken binary) means "not here"
        return f"not installed here: import {module} failed ({type(error).__name__}: {str(error).splitlines()[0]})"
    return None


def pennylane_probabilities(ansatz: Ansatz, device: str) -> Probabilities:
    """PennyLane ``default.qubit`` with the torch interface and backprop, its fastest autograd path for this."""
    import pennylane as qml

    gates = list(gate_sequence(ansatz))
    simulator = qml.device("default.qubit", wires=ansatz.n_qubits)

    @qml.qnode(simulator, interface="torch", diff_method="backprop")
    def circuit(theta: torch.Tensor):
        for gate in gates:
            if gate.kind == "ry":
                qml.RY(theta[gate.second], wires=gate.first)
            else:
                qml.CNOT(wires=[gate.first, gate.second])
        return qml.probs(wires=range(ansatz.n_qubits))

    return lambda theta: circuit(theta.to(device))


def torchquantum_probabilities(ansatz: Ansatz, device: str) -> Probabilities:
    """TorchQuantum (the simulator of the QPA authors' code): a fresh batch-1 device per call, functional gates."""
    import torchquantum as tq
    import torchquantum.functional as tqf

    gates = list(gate_sequence(ansatz))

    def probabilities(theta: torch.Tensor) -> torch.Tensor:
        qdev = tq.QuantumDevice(n_wires=ansatz.n_qubits, bsz=1, device=device)
        for gate in gates:
            if gate.kind == "ry":
                tqf.ry(qdev, wires=gate.first, params=theta[gate.second])
            else:
                tqf.cnot(qdev, wires=[gate.first, gate.second])
        return qdev.get_states_1d()[0].abs() ** 2

    return probabilities


def cirq_probabilities(ansatz: Ansatz) -> Probabilities:
    """``cirq.Simulator`` in complex64, forward only (Cirq has no autograd)."""
    simulator = cirq.Simulator(dtype=np.complex64)

    def probabilities(theta: torch.Tensor) -> torch.Tensor:
        resolver = cirq.ParamResolver(dict(zip(ansatz.weight_symbols, theta.detach().cpu().tolist())))
        state = simulator.simulate(ansatz.circuit, param_resolver=resolver, qubit_order=ansatz.qubits).final_state_vector
        return torch.from_numpy(np.abs(state) ** 2)

    return probabilities
