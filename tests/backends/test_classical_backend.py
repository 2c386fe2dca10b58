"""The classical ablation backend: a drop-in for the circuit with the same trainable numbers."""

from __future__ import annotations

import json

import pytest
import torch

from qcompress.backends import get_backend
from qcompress.circuits import build_ansatz, init_weights
from qcompress.errors import CapabilityError, InputError
from qcompress.training.run_dir import read_header
from tests.fit_helpers import tiny_cli_flags


def test_registered_differentiable_and_on_the_simplex():
    backend = get_backend("classical")
    assert backend.differentiable
    ansatz = build_ansatz("qpa", n_qubits=5, depth=3)
    weights = init_weights(ansatz, seed=1).requires_grad_()
    probs = backend.compile(ansatz).probabilities(weights)
    assert probs.shape == (32,) and (probs > 0).all()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    probs[7].backward()
    assert weights.grad is not None and weights.grad.abs().sum() > 0


def test_deterministic_and_different_from_the_circuit():
    ansatz = build_ansatz("qpa", n_qubits=4, depth=2)
    weights = init_weights(ansatz, seed=0)
    first = get_backend("classical").compile(ansatz).probabilities(weights)
    second = get_backend("classical").compile(ansatz, dtype=torch.float64).probabilities(weights.double())
    torch.testing.assert_close(first.double(), second, rtol=1e-5, atol=1e-7)
    circuit = get_backend("quimb").compile(ansatz).probabilities(weights)
    assert (first - circuit).abs().max() > 1e-3


def test_initial_spread_matches_a_random_circuit():
    """Coefficient of variation ~1 at the initial angles, as documented (Porter-Thomas-like)."""
    ansatz = build_ansatz("qpa", n_qubits=11, depth=8)
    probs = get_backend("classical").compile(ansatz).probabilities(init_weights(ansatz, seed=3))
    cv = (probs.std() / probs.mean()).item()
    assert 0.7 < cv < 1.4


def test_refuses_data_inputs_and_wrong_shapes():
    with pytest.raises(CapabilityError, match="no data inputs"):
        get_backend("classical").compile(build_ansatz("qtha", n_qubits=4, depth=2))
    compiled = get_backend("classical").compile(build_ansatz("qpa", n_qubits=3, depth=2))
    with pytest.raises(InputError, match=r"shape \(6,\)"):
        compiled.probabilities(torch.zeros(5))
    with pytest.raises(CapabilityError, match="no data inputs"):
        compiled.probabilities(torch.zeros(6), torch.zeros(1, 2))


def test_fit_qpa_lora_with_classical_backend_has_the_same_parameter_count(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    counts = {}
    for backend in ("classical", "quimb"):
        out = tmp_path / backend
        flags = [*tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--method", "qpa-lora", "--backend", backend]
        result = run_cli("fit", *flags, "--out", out, "--json")
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert torch.isfinite(torch.tensor(summary["eval_perplexity"]))
        counts[backend] = summary["counts"]["trainable"]
        assert read_header(out)["config"]["qpa"]["backend"] == backend
        evaluated = run_cli("eval", out, "--json", "--seq-len", "64", "--stride", "32", "--max-tokens", "256")
        assert evaluated.exit_code == 0, evaluated.stderr
    assert counts["classical"] == counts["quimb"] > 0


def test_each_read_out_basis_gets_its_own_map():
    """An ablation of a generator read in Z and X needs two independent classical features, not one twice."""
    from qcompress.circuits.base import measured_in

    ansatz = build_ansatz("qpa", n_qubits=4, depth=2)
    weights = init_weights(ansatz, seed=0)
    in_z = get_backend("classical").compile(ansatz).probabilities(weights)
    in_x = get_backend("classical").compile(measured_in(ansatz, "x")).probabilities(weights)
    assert (in_z - in_x).abs().max() > 1e-3
    torch.testing.assert_close(in_x, get_backend("classical").compile(measured_in(ansatz, "x")).probabilities(weights), rtol=0, atol=0)
