"""The state-vector strategy against cirq.Simulator (probabilities, parameter-shift gradients), and the
default backend's choice of strategy on both sides of its width threshold."""

import cirq
import numpy as np
import pytest
import torch

from qcompress.backends.quimb_backend import STATEVECTOR_BELOW_QUBITS, ExactCircuit, QuimbBackend
from qcompress.backends.statevector import StateVectorCircuit
from qcompress.circuits import build_ansatz, init_weights
from qcompress.circuits.base import Ansatz
from qcompress.errors import InputError
from qcompress.generators.qpa import QPAGenerator, QPAGeneratorConfig
from test_backends import cirq_probabilities, encoding_ansatz


def parameter_shift_gradient(ansatz: Ansatz, weights: torch.Tensor, probe: np.ndarray, indices: list[int]) -> np.ndarray:
    """d<probe, p>/d(theta_i) from cirq.Simulator alone: exact for RY(theta) gates, (f(+pi/2) - f(-pi/2)) / 2."""
    grads = []
    for i in indices:
        shifted = [weights.clone(), weights.clone()]
        shifted[0][i] += np.pi / 2
        shifted[1][i] -= np.pi / 2
        plus, minus = (probe @ cirq_probabilities(ansatz, w) for w in shifted)
        grads.append((plus - minus) / 2)
    return np.array(grads)


@pytest.mark.parametrize("n_qubits", [1, 2, 3, 5, 8, 11])
@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("block_qubits", [1, 4])
def test_statevector_matches_cirq(n_qubits, depth, block_qubits):
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=depth)
    weights = init_weights(ansatz, seed=n_qubits + 10 * depth, dtype=torch.float64)
    probs = StateVectorCircuit(ansatz, torch.float64, block_qubits).probabilities(weights)
    assert probs.shape == (2**n_qubits,) and probs.dtype == torch.float64
    np.testing.assert_allclose(probs.numpy(), cirq_probabilities(ansatz, weights), atol=1e-12)


@pytest.mark.parametrize("n_qubits", [STATEVECTOR_BELOW_QUBITS - 1, STATEVECTOR_BELOW_QUBITS])
def test_default_backend_on_both_sides_of_the_threshold_matches_cirq(n_qubits):
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=2)
    compiled = QuimbBackend().compile(ansatz, torch.float64)
    if n_qubits < STATEVECTOR_BELOW_QUBITS:
        assert isinstance(compiled, StateVectorCircuit)
    else:  # the tensor network on the CPU
        assert isinstance(compiled, ExactCircuit) and compiled.strategy_for(torch.device("cpu")) is compiled.network
    weights = init_weights(ansatz, seed=n_qubits, dtype=torch.float64).requires_grad_()
    probs = compiled.probabilities(weights)
    np.testing.assert_allclose(probs.detach().numpy(), cirq_probabilities(ansatz, weights.detach()), atol=1e-12)
    probe = np.random.default_rng(0).standard_normal(2**n_qubits)
    (probs @ torch.from_numpy(probe)).backward()
    indices = [0, n_qubits - 1, n_qubits + 3, 2 * n_qubits - 1]
    np.testing.assert_allclose(weights.grad[indices].numpy(), parameter_shift_gradient(ansatz, weights.detach(), probe, indices), atol=1e-9)


@pytest.mark.parametrize("n_qubits,depth", [(1, 2), (4, 3), (9, 2)])
def test_statevector_gradients_match_cirq_parameter_shift(n_qubits, depth):
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=depth)
    weights = init_weights(ansatz, seed=7, dtype=torch.float64).requires_grad_()
    probe = np.random.default_rng(n_qubits).standard_normal(2**n_qubits)
    (StateVectorCircuit(ansatz, torch.float64).probabilities(weights) @ torch.from_numpy(probe)).backward()
    every = list(range(n_qubits * depth))
    np.testing.assert_allclose(weights.grad.numpy(), parameter_shift_gradient(ansatz, weights.detach(), probe, every), atol=1e-10)


@pytest.mark.parametrize("complex_gates", [False, True])
def test_statevector_with_data_and_complex_gates_matches_cirq_and_finite_differences(complex_gates):
    ansatz = encoding_ansatz(4, complex_gates)
    compiled = StateVectorCircuit(ansatz, torch.float64)
    assert compiled.real is not complex_gates
    assert any(step.kind == "gather" for step in compiled.steps)  # the CNOT ladder is one composed gather
    weights = init_weights(ansatz, seed=5, dtype=torch.float64)
    data = torch.rand(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 6 - 3
    batched = compiled.probabilities(weights, data)
    for row, sample in zip(batched, data):
        np.testing.assert_allclose(row.numpy(), cirq_probabilities(ansatz, weights, sample), atol=1e-12)
    inputs = (weights.clone().requires_grad_(), data[:2].clone().requires_grad_())
    assert torch.autograd.gradcheck(compiled.probabilities, inputs, eps=1e-6, atol=1e-7)


def test_monomial_and_general_multi_qubit_gates():
    """CZ and SWAP (phased and plain permutations), a controlled-H (not a permutation), on non-adjacent qubits."""
    qubits = tuple(cirq.LineQubit.range(4))
    ansatz = build_ansatz("qpa", n_qubits=4, depth=1)
    circuit = ansatz.circuit + cirq.Circuit(
        cirq.CZ(qubits[0], qubits[3]), cirq.SWAP(qubits[1], qubits[3]), cirq.H(qubits[2]).controlled_by(qubits[3]),
        cirq.CCX(qubits[2], qubits[0], qubits[1]), cirq.X(qubits[0]),
    )
    ansatz = Ansatz("mixed", circuit, qubits, ansatz.weight_symbols)
    weights = init_weights(ansatz, seed=3, dtype=torch.float64)
    compiled = StateVectorCircuit(ansatz, torch.float64)
    assert {"gather", "matrix", "permute"} <= {step.kind for step in compiled.steps}
    np.testing.assert_allclose(compiled.probabilities(weights).numpy(), cirq_probabilities(ansatz, weights), atol=1e-12)


def test_same_seed_same_bits_and_strategies_agree():
    ansatz = build_ansatz("qpa", n_qubits=10, depth=4)
    results = []
    for _ in range(2):
        weights = init_weights(ansatz, seed=4).requires_grad_()
        probs = QuimbBackend(strategy="statevector").compile(ansatz).probabilities(weights)
        (probs * torch.linspace(-1, 1, 2**10)).sum().backward()
        results.append((probs.detach(), weights.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    network = QuimbBackend(strategy="network").compile(ansatz).probabilities(init_weights(ansatz, seed=4))
    torch.testing.assert_close(results[0][0], network, atol=1e-6, rtol=0)


def test_constants_are_non_persistent_buffers_and_nothing_is_made_on_the_cpu_in_forward():
    ansatz = build_ansatz("qpa", n_qubits=6, depth=3)
    compiled = StateVectorCircuit(ansatz, torch.float32)
    assert compiled.state_dict() == {} and any(name.startswith("gather_") for name, _ in compiled.named_buffers())
    compiled.to("meta")  # a CPU tensor made inside forward would meet meta ones and fail
    probs = compiled.probabilities(init_weights(ansatz, seed=0).to("meta"))
    assert probs.device.type == "meta" and probs.shape == (64,)


def test_wide_circuits_run_the_state_vector_off_the_cpu():
    """meta stands in for an accelerator: any device but the CPU gets the state vector, and nothing there is made on the CPU."""
    ansatz = build_ansatz("qpa", n_qubits=STATEVECTOR_BELOW_QUBITS, depth=1)
    compiled = QuimbBackend().compile(ansatz).to("meta")
    assert compiled.strategy_for(torch.device("meta")) is compiled.statevector
    probs = compiled.probabilities(init_weights(ansatz, seed=0).to("meta"))
    assert probs.device.type == "meta" and probs.shape == (2**STATEVECTOR_BELOW_QUBITS,)


def test_a_state_dict_saved_with_either_strategy_loads_into_the_other():
    config = QPAGeneratorConfig(n_mlp=8, depth=2, hidden=(4,), seed=3)
    statevector = QPAGenerator(100, config)  # 13 chunks, 4 qubits: the default backend picks the state vector
    network = QPAGenerator(100, config)
    network.readouts[0].circuit = QuimbBackend(strategy="network").compile(network.ansatz)
    assert isinstance(statevector.readouts[0].circuit, StateVectorCircuit)
    assert sorted(statevector.state_dict()) == sorted(network.state_dict()) == [
        "angles", "mlp.0.bias", "mlp.0.weight", "mlp.1.bias", "mlp.1.weight"]
    statevector.load_state_dict(network.state_dict(), strict=True)
    torch.testing.assert_close(statevector(), network(), atol=1e-6, rtol=0)


def test_unknown_strategy_is_refused():
    with pytest.raises(InputError, match="unknown strategy 'fast'"):
        QuimbBackend(strategy="fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("n_qubits", [8, STATEVECTOR_BELOW_QUBITS])
def test_on_cuda_the_default_backend_agrees_with_the_cpu(n_qubits):
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=3)
    compiled = QuimbBackend().compile(ansatz)
    results = []
    for device in ("cpu", "cuda"):
        compiled.to(device)
        weights = init_weights(ansatz, seed=2).to(device).requires_grad_()
        probs = compiled.probabilities(weights)
        (probs * torch.linspace(-1, 1, 2**n_qubits, device=device)).sum().backward()
        assert probs.device.type == device
        results.append((probs.detach().cpu(), weights.grad.cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-6, rtol=0)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-4, rtol=1e-4)
