"""The QPA generator: sizes, exact parameter count, determinism, output, gradients and refusals."""

import pytest
import torch

from qcompress.config import validated
from qcompress.errors import CapabilityError, InputError
from qcompress.generators import QPAGenerator, QPAGeneratorConfig
from qcompress.generators.qpa import qubits_for

SMALL = {"n_mlp": 16, "depth": 2, "hidden": (8, 8)}


@pytest.mark.parametrize(
    "n_weights,n_mlp,expected",
    [(1, 2048, (1, 1)), (2048, 2048, (1, 1)), (2049, 2048, (2, 1)), (4097, 2048, (3, 2)), (460800, 2048, (225, 8)), (100, 7, (15, 4))],
)
def test_chunks_and_qubits(n_weights, n_mlp, expected):
    assert qubits_for(n_weights, n_mlp) == expected


@pytest.mark.parametrize("n_mlp", [2049, 10**12])
def test_a_chunk_longer_than_the_adapter_and_the_default_is_refused_before_anything_is_allocated(n_mlp):
    with pytest.raises(InputError, match="more than the 2,000 weights the generator writes.*use --n-mlp 2048 or less"):
        QPAGenerator(2000, QPAGeneratorConfig(n_mlp=n_mlp))
    assert qubits_for(5000, 5000) == (1, 1)  # up to the whole adapter is a chunk size


def test_paper_sized_generator_has_exact_parameter_count():
    generator = QPAGenerator(460800, QPAGeneratorConfig())
    assert (generator.n_qubits, generator.n_chunks) == (8, 225)
    assert generator.trainable_parameters() == 105_248
    assert generator.angles.numel() == 64


def test_same_config_is_bit_identical_and_seed_matters():
    torch.manual_seed(1)
    first = QPAGenerator(300, QPAGeneratorConfig(**SMALL, seed=3))()
    torch.manual_seed(2)
    second = QPAGenerator(300, QPAGeneratorConfig(**SMALL, seed=3))()
    assert torch.equal(first, second)
    assert not torch.equal(first, QPAGenerator(300, QPAGeneratorConfig(**SMALL, seed=4))())


def test_output_shape_and_mean_centred():
    generator = QPAGenerator(300, QPAGeneratorConfig(**SMALL, activation="gelu"))
    weights = generator()
    assert weights.shape == (300,) and torch.isfinite(weights).all()
    assert abs(weights.mean().item()) < 1e-6 and weights.std().item() > 0
    assert generator.probabilities().shape == (1, 2**generator.n_qubits)


def test_chunk_inputs_are_each_basis_states_own_bits():
    generator = QPAGenerator(5 * 16, QPAGeneratorConfig(**SMALL))
    assert generator.n_qubits == 3
    expected = torch.tensor([[-1, -1, -1], [-1, -1, 1], [-1, 1, -1], [-1, 1, 1], [1, -1, -1]], dtype=torch.float32)
    assert torch.equal(generator.chunk_inputs, expected)


def test_gradients_reach_angles_and_every_mlp_layer():
    generator = QPAGenerator(300, QPAGeneratorConfig(**SMALL))
    target = torch.linspace(-1, 1, 300)
    (generator() - target).square().sum().backward()
    assert generator.angles.grad is not None and generator.angles.grad.abs().sum() > 0
    for parameter in generator.mlp.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_cirq_backend_generates_forward_only():
    quimb = QPAGenerator(300, QPAGeneratorConfig(**SMALL))
    cirq = QPAGenerator(300, QPAGeneratorConfig(**SMALL, backend="cirq"))
    with torch.no_grad():
        torch.testing.assert_close(cirq(), quimb(), atol=1e-5, rtol=1e-4)
    with pytest.raises(CapabilityError, match="forward-only; train with --backend quimb"):
        cirq()


def test_diagram_names_the_angles():
    diagram = QPAGenerator(40, QPAGeneratorConfig(**SMALL)).circuit_diagram()
    assert "Ry(theta_1_1)" in diagram and "@" in diagram


@pytest.mark.parametrize(
    "n_weights,options,message",
    [
        (0, {}, "at least 1 weight"),
        (10, {"backend": "nope"}, "unknown backend 'nope'"),
        (10, {"ansatz": "nope"}, "unknown ansatz 'nope'"),
    ],
)
def test_bad_generator_inputs(n_weights, options, message):
    with pytest.raises(InputError, match=message):
        QPAGenerator(n_weights, QPAGeneratorConfig(**{**SMALL, **options}))


@pytest.mark.parametrize(
    "options,field",
    [({"n_mlp": 0}, "n_mlp"), ({"depth": 0}, "depth"), ({"activation": "swish2"}, "activation"), ({"hidden": (4, 0)}, "hidden")],
)
def test_bad_config_is_one_line_input_error(options, field):
    with pytest.raises(InputError, match=f"invalid generator: {field}") as caught:
        validated(QPAGeneratorConfig, options, "generator")
    assert "\n" not in str(caught.value)


def test_zero_probabilities_keep_gradients_finite():
    generator = QPAGenerator(300, QPAGeneratorConfig(**SMALL))
    with torch.no_grad():
        generator.angles.zero_()  # the circuit stays in |0..0>: every other probability is exactly 0
    generator().square().sum().backward()
    assert torch.isfinite(generator.angles.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in generator.mlp.parameters())


def test_two_read_outs_feed_the_mlp_each_basis_probabilities():
    """readout z+x: one more MLP input (hidden[0] more weights), fed by the X-basis probabilities of the same state."""
    import cirq
    import numpy as np

    one = QPAGenerator(300, QPAGeneratorConfig(**SMALL))
    two = QPAGenerator(300, QPAGeneratorConfig(**SMALL, readout="z+x"))
    assert two.trainable_parameters() == one.trainable_parameters() + SMALL["hidden"][0]
    assert torch.equal(one.angles, two.angles) and not torch.equal(one(), two())
    values = dict(zip(two.ansatz.weight_symbols, two.angles.tolist()))
    state = cirq.final_state_vector(cirq.resolve_parameters(two.ansatz.circuit, values), qubit_order=two.ansatz.qubits)
    hadamards = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    for _ in range(two.n_qubits - 1):
        hadamards = np.kron(hadamards, np.array([[1, 1], [1, -1]]) / np.sqrt(2))
    expected = np.stack([np.abs(state) ** 2, np.abs(hadamards @ state) ** 2])
    np.testing.assert_allclose(two.probabilities().detach().numpy(), expected, atol=1e-6)


def test_ry_rz_generator_trains_twice_the_angles_and_a_final_wall():
    qpa = QPAGenerator(300, QPAGeneratorConfig(**SMALL))
    ry_rz = QPAGenerator(300, QPAGeneratorConfig(**SMALL, ansatz="ry-rz"))
    assert ry_rz.angles.numel() == 2 * qpa.angles.numel() + qpa.n_qubits
    assert ry_rz.trainable_parameters() == qpa.trainable_parameters() + qpa.angles.numel() + qpa.n_qubits
    ry_rz().square().sum().backward()
    assert ry_rz.angles.grad.abs().sum() > 0


@pytest.mark.parametrize("readout", ["y", "z+z", "", "x+z+y"])
def test_bad_readout_is_one_line(readout):
    with pytest.raises(InputError, match="readout") as caught:
        validated(QPAGeneratorConfig, {"readout": readout}, "generator")
    assert "\n" not in str(caught.value)


def test_layer_conditioning_gives_each_chunk_its_layers_position():
    from qcompress.generators.qpa import chunk_layer_positions

    # chunks of 10 starting at 0, 10, 20, 30: the third starts in layer 0 (which ends at 25), the fourth in layer 1
    assert chunk_layer_positions([25, 10, 25], 4, 10).flatten().tolist() == [-1.0, -1.0, -1.0, 0.0]
    plain = QPAGenerator(300, QPAGeneratorConfig(**SMALL))
    conditioned = QPAGenerator(300, QPAGeneratorConfig(**SMALL, condition="layer"), [100, 100, 100])
    assert conditioned.trainable_parameters() == plain.trainable_parameters() + SMALL["hidden"][0]
    assert torch.equal(conditioned.chunk_inputs[:, :-1], plain.chunk_inputs)
    assert conditioned.chunk_inputs[:, -1].unique().tolist() == [-1.0, 0.0, 1.0]
    with pytest.raises(InputError, match="condition 'layer' needs the sizes of the adapted layers"):
        QPAGenerator(300, QPAGeneratorConfig(**SMALL, condition="layer"))
    with pytest.raises(InputError, match="serves one layer: use generator_scope: shared, or condition: none"):
        QPAGenerator(300, QPAGeneratorConfig(**SMALL, condition="layer"), [300])
