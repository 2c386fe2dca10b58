"""The QPA ansatz's structure, the ansatz registry and deterministic angle initialisation."""

import math

import cirq
import pytest
import torch

from qcompress.circuits import build_ansatz, init_weights
from qcompress.errors import InputError


def test_qpa_structure_is_ry_layers_then_cnot_ladder():
    ansatz = build_ansatz("qpa", n_qubits=4, depth=3)
    ops = list(ansatz.circuit.all_operations())
    assert ansatz.n_qubits == 4 and len(ansatz.weight_symbols) == 12
    assert sum(isinstance(op.gate, cirq.Ry) for op in ops) == 12
    cnots = [tuple(q.x for q in op.qubits) for op in ops if op.gate == cirq.CNOT]
    assert cnots == [(0, 1), (1, 2), (2, 3)] * 3
    first_block = ops[:4]
    assert [op.qubits[0].x for op in first_block] == [0, 1, 2, 3]
    assert [next(iter(cirq.parameter_names(op))) for op in first_block] == [s.name for s in ansatz.weight_symbols[:4]]


def test_single_qubit_ansatz_has_no_cnot():
    ansatz = build_ansatz("qpa", n_qubits=1, depth=2)
    assert [type(op.gate) for op in ansatz.circuit.all_operations()] == [cirq.Ry, cirq.Ry]


@pytest.mark.parametrize("kwargs", [{"n_qubits": 0, "depth": 1}, {"n_qubits": 2, "depth": 0}])
def test_bad_sizes_are_input_errors(kwargs):
    with pytest.raises(InputError, match="n_qubits >= 1 and depth >= 1"):
        build_ansatz("qpa", **kwargs)


def test_unknown_ansatz_lists_choices():
    with pytest.raises(InputError, match="unknown ansatz 'nope'; choose one of: .*qpa"):
        build_ansatz("nope")


def test_init_weights_deterministic_in_range_and_ignores_global_rng():
    ansatz = build_ansatz("qpa", n_qubits=3, depth=4)
    torch.manual_seed(123)
    first = init_weights(ansatz, seed=7)
    torch.manual_seed(456)
    second = init_weights(ansatz, seed=7)
    assert torch.equal(first, second)
    assert not torch.equal(first, init_weights(ansatz, seed=8))
    assert first.shape == (12,) and first.dtype == torch.float32
    assert first.abs().max() <= math.pi
    assert init_weights(ansatz, seed=7, dtype=torch.float64).dtype == torch.float64


def test_ry_rz_structure_is_two_rotations_per_qubit_then_cnot_ladder():
    ansatz = build_ansatz("ry-rz", n_qubits=3, depth=2)
    ops = list(ansatz.circuit.all_operations())
    assert len(ansatz.weight_symbols) == 15 and ansatz.basis == "z"
    assert sum(isinstance(op.gate, cirq.Ry) for op in ops) == 9 and sum(isinstance(op.gate, cirq.Rz) for op in ops) == 6
    assert [s.name for s in ansatz.weight_symbols[-3:]] == ["omega_0", "omega_1", "omega_2"]
    assert all(isinstance(op.gate, cirq.Ry) for op in ops[-3:])  # the final wall, after the last CNOT
    assert [tuple(q.x for q in op.qubits) for op in ops if op.gate == cirq.CNOT] == [(0, 1), (1, 2)] * 2
    assert [s.name for s in ansatz.weight_symbols[:6]] == ["theta_0_0", "theta_0_1", "theta_0_2", "phi_0_0", "phi_0_1", "phi_0_2"]
    with pytest.raises(InputError, match="RY-RZ ansatz needs"):
        build_ansatz("ry-rz", n_qubits=0, depth=1)


def test_measured_in_x_appends_one_hadamard_per_qubit_and_only_once():
    from qcompress.circuits.base import measured_in

    ansatz = build_ansatz("qpa", n_qubits=3, depth=1)
    assert measured_in(ansatz, "z") is ansatz
    in_x = measured_in(ansatz, "x")
    assert in_x.basis == "x" and in_x.weight_symbols == ansatz.weight_symbols
    added = list(in_x.circuit.all_operations())[len(list(ansatz.circuit.all_operations())) :]
    assert [op.gate for op in added] == [cirq.H] * 3 and sorted(op.qubits[0].x for op in added) == [0, 1, 2]
    with pytest.raises(InputError, match="already read in the x basis"):
        measured_in(in_x, "z")
    with pytest.raises(InputError, match="unknown measurement basis 'y'"):
        measured_in(ansatz, "y")
