"""QTHA: circuit vs Cirq (alone and stacked), batched vs per-token contraction, sibling sharing, tensor trains vs
dense, collapse parity, bad configs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from qcompress.backends.cirq_backend import CirqBackend
from qcompress.backends.quimb_backend import QuimbBackend
from qcompress.circuits import build_ansatz, init_weights
from qcompress.errors import InputError
from qcompress.methods import get_method
from qcompress.methods.qtha.ansatz import MAX_QUBITS, weights_per_layer
from qcompress.methods.qtha.circuit import QthaStatevector
from qcompress.methods.qtha.compiled import CompiledQthaCircuit
from qcompress.methods.qtha.deploy import FoldedQtha, deploy_groups
from qcompress.methods.tensor_train import TTLinear, bond_dimensions, factorize
from qcompress.models import load_model

from fit_helpers import tiny_config


@pytest.mark.parametrize("n_qubits,depth", [(1, 2), (2, 1), (3, 2), (5, 2), (9, 1)])  # 1, 2 and 3 chunks
def test_statevector_and_quimb_match_cirq_simulator(n_qubits, depth):
    ansatz = build_ansatz("qtha", n_qubits=n_qubits, depth=depth)
    assert len(ansatz.weight_symbols) == depth * weights_per_layer(n_qubits)
    weights = init_weights(ansatz, seed=n_qubits)
    data = torch.randn(3, n_qubits, generator=torch.Generator().manual_seed(depth)) * 2
    expected = CirqBackend().compile(ansatz, torch.float64).expectation_z(weights.double(), data.double())
    quimb = QuimbBackend().compile(ansatz, torch.float64).expectation_z(weights.double(), data.double())
    plain = QthaStatevector(n_qubits, depth)(weights, data)
    assert torch.allclose(quimb, expected, atol=1e-10)
    assert torch.allclose(plain.double(), expected, atol=1e-5)
    assert expected.abs().max() > 1e-3  # a non-trivial state, not all <Z> = 0


# 1, 1, 2 and 3 chunks; each encoding after the first rotates the chunk order, so (8, 3) and (9, 4) go
# round the rotations at least once and end in another order than they start in
@pytest.mark.parametrize("n_qubits,depth", [(1, 2), (3, 2), (8, 2), (9, 2), (8, 3), (9, 4)])
def test_stacked_members_each_match_cirq_simulator(n_qubits, depth):
    """Sibling layers' circuits run as one stacked computation (member axis): each member is its own circuit."""
    ansatz = build_ansatz("qtha", n_qubits=n_qubits, depth=depth)
    weights = torch.stack([init_weights(ansatz, seed=seed) for seed in range(3)])
    data = torch.randn(4, 3, n_qubits, generator=torch.Generator().manual_seed(n_qubits)) * 2
    stacked = QthaStatevector(n_qubits, depth)(weights, data)
    assert stacked.shape == (4, 3, n_qubits)
    cirq = CirqBackend().compile(ansatz, torch.float64)
    for member in range(3):
        expected = cirq.expectation_z(weights[member].double(), data[:, member].double())
        assert torch.allclose(stacked[:, member].double(), expected, atol=1e-5)
    assert not torch.allclose(stacked[:, 0], stacked[:, 1], atol=1e-3)  # the members' gates differ


def test_circuit_runs_on_the_weights_device_with_no_host_tensor_or_sync():
    """Every constant is a buffer and nothing is read back: on the meta device (no data at all) forward and
    backward go through, where a tensor built on the CPU would mismatch devices and .item() would raise."""
    circuit = QthaStatevector(9, 2).to("meta")
    weights = torch.zeros(2, circuit.n_weights, device="meta", requires_grad=True)
    data = torch.zeros(5, 2, 9, device="meta", requires_grad=True)
    out = checkpoint(circuit, weights, data, use_reentrant=False, preserve_rng_state=False)
    out.sum().backward()
    assert weights.grad.shape == weights.shape and data.grad.shape == data.shape


@pytest.mark.parametrize("n_qubits,depth", [(1, 2), (2, 1), (5, 2), (8, 2), (9, 1)])  # empty / equal / unequal halves
def test_compiled_inference_form_matches_cirq_simulator_for_every_member(n_qubits, depth):
    """The deployed two-sided form, three members stacked: each member's <Z> against cirq.Simulator, then its norm 1."""
    ansatz = build_ansatz("qtha", n_qubits=n_qubits, depth=depth)
    members = [init_weights(ansatz, seed=seed).double() for seed in range(3)]
    exact = QthaStatevector(n_qubits, depth).double()
    compiled = CompiledQthaCircuit([exact.schedule(weights) for weights in members], n_qubits)
    data = torch.randn(4, 3, n_qubits, generator=torch.Generator().manual_seed(n_qubits)) * 2
    got = compiled(data.reshape(4, -1)).reshape(4, 3, n_qubits + 1).double()
    cirq = CirqBackend().compile(ansatz, torch.float64)
    for index, weights in enumerate(members):
        expected = cirq.expectation_z(weights, data[:, index].double())
        assert torch.allclose(got[:, index, :-1], expected, atol=1e-5)
    assert torch.allclose(got[..., -1], torch.ones(4, 3, dtype=torch.float64), atol=1e-5)
    assert not any(True for _ in compiled.parameters())  # constants only


def test_batched_contraction_equals_one_token_at_a_time():
    ansatz = build_ansatz("qtha", n_qubits=4, depth=2)
    weights = init_weights(ansatz, seed=1).double()
    data = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    compiled = QuimbBackend().compile(ansatz, torch.float64)
    batched = compiled.expectation_z(weights, data)
    one_by_one = torch.cat([compiled.expectation_z(weights, row[None]) for row in data])
    assert torch.allclose(batched, one_by_one, atol=1e-12)
    plain = QthaStatevector(4, 2)
    assert torch.allclose(plain(weights.float(), data.float()), torch.cat([plain(weights.float(), row[None].float()) for row in data]), atol=1e-6)


@pytest.mark.parametrize("n_qubits", [3, 5])  # one chunk; two chunks (the last applied from the right)
def test_statevector_gradients_match_quimb(n_qubits):
    """Gradients of two stacked members (weights and data) against the quimb reference run per member."""
    ansatz = build_ansatz("qtha", n_qubits=n_qubits, depth=2)
    reference = QuimbBackend().compile(ansatz).expectation_z
    grads = []
    for simulate in (QthaStatevector(n_qubits, 2),
                     lambda w, d: torch.stack([reference(w[m], d[:, m]) for m in range(2)], 1)):
        weights = torch.stack([init_weights(ansatz, seed=seed) for seed in (2, 3)]).requires_grad_()
        data = torch.linspace(-1, 1, 4 * n_qubits).reshape(2, 2, n_qubits).requires_grad_()
        (simulate(weights, data) * torch.arange(4.0 * n_qubits).reshape(2, 2, n_qubits)).sum().backward()
        grads.append((weights.grad, data.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5) and torch.allclose(grads[0][1], grads[1][1], atol=1e-5)


def test_factorisation_and_exact_parameter_counts():
    assert factorize(576, 4) == (6, 6, 4, 4) and factorize(192, 4) == (4, 4, 4, 3) and factorize(7, 4) == (7, 1, 1, 1)
    assert bond_dimensions((2, 1), (2, 1), 8) == (1, 1, 1)  # a bond never exceeds what one side can carry
    layer = TTLinear(576, 256, cores=4, bond=8)
    # cores (1,6,4,8) (8,6,4,8) (8,4,4,8) (8,4,4,1)
    assert layer.n_parameters() == 6 * 4 * 8 + 8 * 6 * 4 * 8 + 8 * 4 * 4 * 8 + 8 * 4 * 4 == 2880
    assert "576=6x6x4x4 -> 256=4x4x4x4" in layer.shape_text()


def test_tensor_train_contraction_equals_its_dense_matrix():
    torch.manual_seed(0)
    layer = TTLinear(96, 40, cores=3, bond=5)
    x = torch.randn(7, 96)
    dense = layer.dense()
    assert torch.allclose(layer.dense_quimb(), dense, atol=1e-6)
    # one entry by its definition: the product of core slices along the chain
    assert (layer.in_dims, layer.out_dims) == ((6, 4, 4), (5, 4, 2))
    i, j = (1, 3, 0), (2, 1, 1)  # digits of row/column in the factorised dims
    product = torch.ones(1, 1)
    for core, a, b in zip(layer.cores, i, j):
        product = product @ core[:, a, b, :]
    row = (i[0] * layer.in_dims[1] + i[1]) * layer.in_dims[2] + i[2]
    col = (j[0] * layer.out_dims[1] + j[1]) * layer.out_dims[2] + j[2]
    assert torch.allclose(dense[row, col], product[0, 0], atol=1e-6)
    assert torch.allclose(layer(x), x @ dense, atol=1e-5)
    assert TTLinear(40, 96, cores=3, bond=5, zero_last=True).dense().abs().max() == 0


def _attached(model_dir, corpus_dir, **extra):
    config = tiny_config(model_dir, corpus_dir, method="qtha", **{"adapter.rank": 3, "method_config.inner": 16, **extra})
    loaded = load_model(config.model)
    return get_method("qtha").attach(loaded.model, config), loaded


def test_starts_at_the_base_model_and_collapses_with_parity(tiny_model_dir, corpus_dir):
    ids = torch.randint(0, 300, (2, 10), generator=torch.Generator().manual_seed(0))
    adapted, _ = _attached(tiny_model_dir, corpus_dir)
    base = load_model(str(tiny_model_dir)).model
    with torch.no_grad():
        assert torch.equal(adapted.model(input_ids=ids).logits, base(input_ids=ids).logits)
        for parameter in adapted.trainable_parameters():  # move away from the zero start
            parameter.add_(torch.randn_like(parameter) * 0.3)
        trained = adapted.model(input_ids=ids).logits
        assert (trained - base(input_ids=ids).logits).abs().max() > 1e-3
        collapsed = adapted.collapse()
        assert collapsed.unsupported_formats["safetensors"]
        assert (collapsed.model(input_ids=ids).logits - trained).abs().max() <= 1e-4


def test_counts_and_state_round_trip(tiny_gpt2_dir, corpus_dir):
    adapted, _ = _attached(tiny_gpt2_dir, corpus_dir)
    counts = adapted.counts()
    assert counts["lora_equivalent"] == 2 * 3 * (32 + 96)  # two c_attn layers, r (in + out)
    assert counts["trainable"] == sum(p.numel() for p in adapted.trainable_parameters())
    assert counts["circuit"] == 2 * 3 * weights_per_layer(3)  # L defaults to r
    state = adapted.trainable_state()
    other, _ = _attached(tiny_gpt2_dir, corpus_dir, seed=5)
    other.load_trainable_state(state)
    assert all(torch.equal(state[k], v) for k, v in other.trainable_state().items())
    with pytest.raises(InputError, match="does not fit"):
        other.load_trainable_state({k: v for k, v in state.items() if "angles" not in k})


@pytest.mark.parametrize("extra,message", [
    ({"adapter.rank": MAX_QUBITS + 1}, "simulation limit"),
    ({"adapter.targets": "no_such_proj"}, "matches no linear layer"),
])
def test_bad_configs_are_one_line_input_errors(tiny_gpt2_dir, corpus_dir, extra, message):
    with pytest.raises(InputError, match=message) as error:
        _attached(tiny_gpt2_dir, corpus_dir, **extra)
    assert "\n" not in str(error.value)


def test_rank_below_one_is_rejected(tiny_gpt2_dir, corpus_dir):
    with pytest.raises(InputError, match="rank"):
        tiny_config(tiny_gpt2_dir, corpus_dir, method="qtha", **{"adapter.rank": 0})
    with pytest.raises(InputError, match="r >= 1"):
        build_ansatz("qtha", n_qubits=0, depth=1)


def test_deployed_group_with_constant_gates_equals_each_trained_circuit():
    """A group prepares its members' gates once (float64, walls merged), stacks them and runs them in one pass."""
    gen = torch.Generator().manual_seed(1)
    members = [
        FoldedQtha(torch.randn(out, 6, generator=gen), torch.randn(out, generator=gen), torch.randn(5, 6, generator=gen),
                   torch.randn(5, generator=gen), torch.randn(out, 5, generator=gen),
                   init_weights(build_ansatz("qtha", n_qubits=5, depth=3), seed=seed))
        for seed, out in ((4, 7), (5, 3))
    ]
    parent = torch.nn.Module()
    deployed = deploy_groups(parent, {"q": members[0], "v": members[1]}, depth=3)
    assert [name for name, _ in parent.named_children()] == ["qtha_circuits_0"]
    x = torch.randn(2, 4, 6, generator=gen)
    for name, folded in zip("qv", members):
        angles = (x @ folded.encode.T + folded.encode_bias).reshape(-1, 5).double()
        circuit = QthaStatevector(5, 3).double()(folded.angles.double(), angles).float().reshape(2, 4, 5)
        expected = x @ folded.weight.T + folded.bias + circuit @ folded.readout.T
        assert torch.allclose(deployed[name](x), expected, atol=1e-5)
    group = parent.qtha_circuits_0
    before = group._last[1]
    deployed["q"](x.clone())  # another input tensor: recomputed, not reused
    assert group._last[1] is not before
    assert not any(name.startswith("gate_") for name, _ in group.named_parameters())


def _unshared_forward(layer, x: torch.Tensor) -> torch.Tensor:
    """The QTHA layer by its definition, one member alone and nothing recomputed: the reference for the stacked form."""
    a = layer.mlp_a(layer.tt_a(x))
    q = QthaStatevector(layer.rank, layer.angles.numel() // weights_per_layer(layer.rank))(layer.angles, a.reshape(-1, layer.rank))
    return layer.base(x) + layer.tt_b(layer.mlp_b(layer.qw(q.reshape(a.shape)) + layer.cw(a))) * layer.scale


def test_stacked_siblings_give_each_layers_outputs_and_gradients(tiny_llama_dir, corpus_dir):
    """q_proj and v_proj share one stacked, recomputed-in-backward pass; outputs and every gradient equal each
    layer computed alone by its definition."""
    adapted, _ = _attached(tiny_llama_dir, corpus_dir)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in adapted.trainable_parameters():  # TT_B starts at zero: make every gradient non-trivial
            parameter.add_(torch.randn(parameter.shape, generator=gen) * 0.3)
    q_proj, v_proj = (adapted.layers[name] for name in list(adapted.layers)[:2])
    assert q_proj._group[0] is v_proj._group[0] and len(q_proj._group[0].members) == 2
    x = torch.randn(2, 5, q_proj.base.in_features, generator=torch.Generator().manual_seed(0), requires_grad=True)
    inputs = [x, *adapted.trainable_parameters()]
    stacked = [layer(x) for layer in (q_proj, v_proj)]
    alone = [_unshared_forward(layer, x) for layer in (q_proj, v_proj)]
    for got, expected in zip(stacked, alone):
        assert torch.allclose(got, expected, atol=1e-5)
    weights = [torch.randn(out.shape, generator=gen) for out in stacked]
    grad = lambda outs: torch.autograd.grad(sum((o * w).sum() for o, w in zip(outs, weights)), inputs, allow_unused=True)  # noqa: E731
    for got, expected in zip(grad(stacked), grad(alone)):
        assert (got is None) == (expected is None)
        assert got is None or torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_siblings_share_one_pass_per_input_and_release_it(tiny_llama_dir, corpus_dir):
    adapted, _ = _attached(tiny_llama_dir, corpus_dir)
    q_proj, v_proj = (adapted.layers[name] for name in list(adapted.layers)[:2])
    group, passes = q_proj._group[0], []
    compute = group._compute
    group._compute = lambda x: passes.append(x) or compute(x)
    x = torch.randn(3, q_proj.base.in_features)
    q_proj(x), v_proj(x)
    assert len(passes) == 1 and group._shared is None  # one stacked pass, dropped once both members took theirs
    q_proj(x), q_proj(x)
    assert len(passes) == 3  # the same member twice: recomputed, never another call's result
    v_proj(x.clone())
    assert len(passes) == 4  # another tensor: recomputed
    with torch.no_grad():
        q_proj(x)
    assert torch.is_grad_enabled() and v_proj(x).requires_grad  # not the no-grad pass's result


def test_same_seed_gives_byte_identical_training(tiny_llama_dir, corpus_dir):
    """Two attaches with the same config and seed, two optimizer steps each: identical bytes in every trained tensor."""
    ids = torch.randint(0, 300, (2, 10), generator=torch.Generator().manual_seed(0))
    states = []
    for _ in range(2):
        adapted, _ = _attached(tiny_llama_dir, corpus_dir)
        optimizer = torch.optim.AdamW(adapted.trainable_parameters(), lr=1e-2)
        for _ in range(2):
            adapted.model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        states.append(adapted.trainable_state())
    assert states[0].keys() == states[1].keys()
    assert all(states[0][k].numpy().tobytes() == states[1][k].numpy().tobytes() for k in states[0])
    assert any(not torch.equal(v, states[0][k]) for k, v in _attached(tiny_llama_dir, corpus_dir)[0].trainable_state().items())


def _exported_circuit(depth: int, path) -> tuple[list[str], CompiledQthaCircuit]:
    """The inference form (r = 8, two members) exported alone; returns its node types and the module."""
    import onnx

    ansatz = build_ansatz("qtha", n_qubits=8, depth=depth)
    exact = QthaStatevector(8, depth).double()
    compiled = CompiledQthaCircuit([exact.schedule(init_weights(ansatz, seed=s).double()) for s in (0, 1)], 8)
    tokens = torch.export.Dim("tokens", min=1, max=64)
    with torch.no_grad():
        torch.onnx.export(compiled, (torch.randn(3, 16),), str(path), dynamo=True, dynamic_shapes=({0: tokens},),
                          optimize=True, verbose=False)
    return [node.op_type for node in onnx.load(str(path)).graph.node], compiled


def test_inference_form_costs_eight_operations_per_circuit_layer_in_onnx(tmp_path):
    """Generation pays ONNX Runtime's per-operation cost once per layer per token: guard the count and the op kinds.

    No gather (the phases are a broadcast product and a sum) and no ReduceProd (which breaks ORT's
    shape inference and with it the graph's offline fusions); ORT on the exported graph = PyTorch."""
    import numpy as np
    import onnxruntime as ort

    shallow, _ = _exported_circuit(2, tmp_path / "two.onnx")
    deep, compiled = _exported_circuit(4, tmp_path / "four.onnx")
    assert (len(deep) - len(shallow)) / 2 == 8
    assert not {"GatherND", "Gather", "ReduceProd"} & set(deep)
    angles = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(tmp_path / "four.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: angles.numpy()})[0]
    assert np.abs(got - compiled(angles).numpy()).max() < 1e-5
