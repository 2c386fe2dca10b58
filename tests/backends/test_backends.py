"""Backends against Cirq's own simulator: values, gradients, batching, tree reuse and refusals."""

import json

import cirq
import numpy as np
import pytest
import sympy
import torch

from qcompress.backends import get_backend, require_differentiable
from qcompress.backends.cirq_backend import CirqBackend
from qcompress.backends.contraction_trees import TreeCache
from qcompress.backends.quimb_backend import QuimbBackend
from qcompress.circuits import Ansatz, build_ansatz, init_weights
from qcompress.errors import CapabilityError, InputError


def cirq_probabilities(ansatz: Ansatz, weights: torch.Tensor, data: torch.Tensor | None = None) -> np.ndarray:
    values = dict(zip(ansatz.weight_symbols, weights.tolist()))
    if data is not None:
        values.update(zip(ansatz.data_symbols, data.tolist()))
    resolved = cirq.resolve_parameters(ansatz.circuit, cirq.ParamResolver(values))
    state = cirq.final_state_vector(resolved, qubit_order=ansatz.qubits, dtype=np.complex128)
    return np.abs(state) ** 2


def encoding_ansatz(n_qubits: int, complex_gates: bool) -> Ansatz:
    """RY(data) on every qubit, then RY(weight), CNOTs, and optionally complex RZ / controlled-RZ / scaled symbols."""
    qubits = tuple(cirq.LineQubit.range(n_qubits))
    xs = tuple(sympy.Symbol(f"x{q}") for q in range(n_qubits))
    ws = tuple(sympy.Symbol(f"w{q}") for q in range(2 * n_qubits))
    circuit = cirq.Circuit(cirq.ry(x).on(q) for x, q in zip(xs, qubits))
    circuit.append(cirq.ry(w).on(q) for w, q in zip(ws, qubits))
    circuit.append(cirq.CNOT(a, b) for a, b in zip(qubits, qubits[1:]))
    if complex_gates:
        circuit.append(cirq.rz(2 * ws[n_qubits]).on(qubits[0]))
        circuit.append(cirq.rz(ws[n_qubits + 1] + 0.3).on(qubits[1]).controlled_by(qubits[0]))
        circuit.append(cirq.H(qubits[-1]))
        circuit.append(cirq.rx(xs[0] / 2).on(qubits[-1]))
    weights = ws if complex_gates else ws[:n_qubits]
    return Ansatz("encoding", circuit, qubits, weights, xs)


@pytest.mark.parametrize("strategy", ["network", "statevector"])
@pytest.mark.parametrize("name,basis", [("ry-rz", "z"), ("ry-rz", "x"), ("qpa", "x")])
@pytest.mark.parametrize("n_qubits", [1, 3, 6])
def test_generator_variants_match_cirq(name, basis, n_qubits, strategy):
    """Issue 21's complex ansatz and second read-out basis: probabilities and gradients against cirq.Simulator."""
    from qcompress.circuits.base import measured_in

    ansatz = measured_in(build_ansatz(name, n_qubits=n_qubits, depth=3), basis)
    weights = init_weights(ansatz, seed=n_qubits).double().requires_grad_()
    probs = QuimbBackend(strategy=strategy).compile(ansatz, dtype=torch.float64).probabilities(weights)
    np.testing.assert_allclose(probs.detach().numpy(), cirq_probabilities(ansatz, weights.detach()), atol=1e-12)
    probe = torch.linspace(-1, 1, 2**n_qubits, dtype=torch.float64)
    (gradient,) = torch.autograd.grad(probs @ probe, weights)
    for i in range(len(weights)):  # every gate is RY or RZ: the parameter-shift rule is exact
        shifted = [weights.detach().clone() for _ in range(2)]
        shifted[0][i] += np.pi / 2
        shifted[1][i] -= np.pi / 2
        plus, minus = (cirq_probabilities(ansatz, w) @ probe.numpy() for w in shifted)
        assert gradient[i].item() == pytest.approx((plus - minus) / 2, abs=1e-10)
    if n_qubits > 1:  # no angle is dead: each moves the probabilities (one qubit in Z: RZ on |0>/|1> is a phase)
        assert (gradient.abs() > 1e-6).all(), gradient


def network_backend(**options) -> QuimbBackend:
    """The tensor-network strategy whatever the width: the tests of trees, plans and folding need it."""
    return QuimbBackend(strategy="network", **options)


@pytest.mark.parametrize("strategy", ["network", "statevector"])
@pytest.mark.parametrize("n_qubits", range(1, 11))
@pytest.mark.parametrize("depth", [1, 3])
def test_quimb_matches_cirq_float32(n_qubits, depth, strategy):
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=depth)
    weights = init_weights(ansatz, seed=n_qubits + 10 * depth)
    probs = QuimbBackend(strategy=strategy).compile(ansatz).probabilities(weights)
    assert probs.dtype == torch.float32 and probs.shape == (2**n_qubits,)
    np.testing.assert_allclose(probs.numpy(), cirq_probabilities(ansatz, weights), atol=1e-6)


@pytest.mark.parametrize("strategy", ["network", "statevector"])
@pytest.mark.parametrize("n_qubits,depth", [(1, 2), (4, 5), (7, 2)])
def test_quimb_matches_cirq_float64_and_sums_to_one(n_qubits, depth, strategy):
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=depth)
    weights = init_weights(ansatz, seed=3, dtype=torch.float64)
    probs = QuimbBackend(strategy=strategy).compile(ansatz, torch.float64).probabilities(weights)
    np.testing.assert_allclose(probs.numpy(), cirq_probabilities(ansatz, weights), atol=1e-10)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_qpa_circuit_is_simulated_in_a_real_dtype():
    assert network_backend().compile(build_ansatz("qpa", n_qubits=3, depth=2)).real
    assert not network_backend().compile(encoding_ansatz(3, complex_gates=True)).real


def test_gradients_match_finite_differences():
    ansatz = build_ansatz("qpa", n_qubits=3, depth=2)
    compiled = network_backend().compile(ansatz, torch.float64)
    weights = init_weights(ansatz, seed=1, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(compiled.probabilities, (weights,), eps=1e-6, atol=1e-7)


def test_gradients_through_complex_gates_and_data_match_finite_differences():
    ansatz = encoding_ansatz(3, complex_gates=True)
    compiled = network_backend().compile(ansatz, torch.float64)
    weights = init_weights(ansatz, seed=2, dtype=torch.float64).requires_grad_()
    data = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    assert torch.autograd.gradcheck(compiled.probabilities, (weights, data), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("complex_gates", [False, True])
def test_batched_data_equals_per_sample_and_cirq(complex_gates):
    ansatz = encoding_ansatz(4, complex_gates)
    compiled = network_backend().compile(ansatz, torch.float64)
    weights = init_weights(ansatz, seed=5, dtype=torch.float64)
    data = torch.rand(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 6 - 3
    assert any(batch.per_sample for batch in compiled.plan.batches)  # data gates absorbed, with a batch index
    batched = compiled.probabilities(weights, data)
    assert batched.shape == (5, 16)
    for row, sample in zip(batched, data):
        torch.testing.assert_close(row, compiled.probabilities(weights, sample.unsqueeze(0))[0], atol=1e-12, rtol=0)
        np.testing.assert_allclose(row.numpy(), cirq_probabilities(ansatz, weights, sample), atol=1e-10)


def test_contraction_tree_is_searched_once_per_structure():
    trees = TreeCache(directory=None)
    ansatz = build_ansatz("qpa", n_qubits=5, depth=2)
    compiled = network_backend(trees=trees).compile(ansatz)
    for seed in range(3):
        compiled.probabilities(init_weights(ansatz, seed))
    network_backend(trees=trees).compile(ansatz).probabilities(init_weights(ansatz, 9))
    assert trees.searches == 1
    network_backend(trees=trees).compile(build_ansatz("qpa", n_qubits=5, depth=3)).probabilities(torch.zeros(15))
    assert trees.searches == 2


def test_hyper_searched_paths_are_kept_on_disk(tmp_path):
    ansatz = build_ansatz("qpa", n_qubits=4, depth=2)
    weights = init_weights(ansatz, 4, torch.float64)
    first = TreeCache(directory=tmp_path, greedy_qubits=2, hyper_repeats=2)
    expected = network_backend(trees=first).compile(ansatz, torch.float64).probabilities(weights)
    assert first.searches == 1 and len(list(tmp_path.glob("*.json"))) == 1
    second = TreeCache(directory=tmp_path, greedy_qubits=2, hyper_repeats=2)
    again = network_backend(trees=second).compile(ansatz, torch.float64).probabilities(weights)
    assert second.searches == 0
    torch.testing.assert_close(again, expected, atol=1e-14, rtol=0)


def test_quimb_tensor_network_view_contracts_to_the_same_state():
    ansatz = build_ansatz("qpa", n_qubits=4, depth=2)
    compiled = network_backend().compile(ansatz, torch.float64)
    weights = init_weights(ansatz, 6, torch.float64)
    network = compiled.tensor_network(weights)
    amplitudes = network.contract(output_inds=compiled.network.output_inds).data.reshape(-1)
    torch.testing.assert_close(amplitudes**2, compiled.probabilities(weights), atol=1e-12, rtol=0)


def test_expectation_z_matches_cirq():
    ansatz = build_ansatz("qpa", n_qubits=3, depth=2)
    weights = init_weights(ansatz, 11, torch.float64)
    resolved = cirq.resolve_parameters(ansatz.circuit, dict(zip(ansatz.weight_symbols, weights.tolist())))
    state = cirq.final_state_vector(resolved, qubit_order=ansatz.qubits, dtype=np.complex128)
    expected = [cirq.Z(q).expectation_from_state_vector(state, {q: i for i, q in enumerate(ansatz.qubits)}).real for q in ansatz.qubits]
    got = network_backend().compile(ansatz, torch.float64).expectation_z(weights)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)


def test_cirq_backend_agrees_forward_and_refuses_to_train():
    ansatz = encoding_ansatz(3, complex_gates=True)
    weights = init_weights(ansatz, 2, torch.float64)
    data = torch.rand(2, 3, dtype=torch.float64)
    reference = CirqBackend().compile(ansatz, torch.float64).probabilities(weights, data)
    torch.testing.assert_close(QuimbBackend().compile(ansatz, torch.float64).probabilities(weights, data), reference)
    with pytest.raises(CapabilityError, match="backend 'cirq' is forward-only; train with --backend quimb"):
        CirqBackend().compile(ansatz).probabilities(weights.float().requires_grad_(), data.float())
    with pytest.raises(CapabilityError, match="forward-only and cannot train; use --backend quimb"):
        require_differentiable(get_backend("cirq"))
    require_differentiable(get_backend("quimb"))


def test_backend_lookup_and_input_shape_errors():
    with pytest.raises(InputError, match="unknown backend 'nope'"):
        get_backend("nope")
    compiled = QuimbBackend().compile(build_ansatz("qpa", n_qubits=2, depth=1))
    with pytest.raises(InputError, match=r"weights must have shape \(2,\)"):
        compiled.probabilities(torch.zeros(3))
    with pytest.raises(InputError, match="no data symbols"):
        compiled.probabilities(torch.zeros(2), torch.zeros(1, 1))


def test_non_affine_exponent_is_a_capability_error():
    theta = sympy.Symbol("t")
    qubit = cirq.LineQubit(0)
    ansatz = Ansatz("bad", cirq.Circuit(cirq.ry(theta**2).on(qubit)), (qubit,), (theta,))
    with pytest.raises(CapabilityError, match="not affine"):
        QuimbBackend().compile(ansatz)


def test_hyper_search_is_deterministic():
    ansatz = build_ansatz("qpa", n_qubits=4, depth=2)
    paths = []
    for _ in range(2):
        compiled = network_backend(trees=TreeCache(directory=None, greedy_qubits=2, hyper_repeats=3)).compile(ansatz)
        paths.append(compiled.contraction_tree().get_path())
    assert paths[0] == paths[1]


def test_rotation_gates_are_absorbed_into_constant_blocks():
    compiled = network_backend().compile(build_ansatz("qpa", n_qubits=6, depth=4))
    assert all(len(positions) == 0 for positions in compiled.plan.standalone)
    assert len(compiled.input_indices(batched=False)) < 6 * 4


def test_corrupt_stored_path_is_searched_again(tmp_path):
    ansatz = build_ansatz("qpa", n_qubits=4, depth=2)
    network_backend(trees=TreeCache(directory=tmp_path, greedy_qubits=2, hyper_repeats=2)).compile(ansatz).probabilities(torch.zeros(8))
    (stored,) = tmp_path.glob("*.json")
    stored.write_text("{not json")
    trees = TreeCache(directory=tmp_path, greedy_qubits=2, hyper_repeats=2)
    probs = network_backend(trees=trees).compile(ansatz).probabilities(torch.zeros(8))
    assert trees.searches == 1 and probs[0].item() == pytest.approx(1.0)
    assert json.loads(stored.read_text())
