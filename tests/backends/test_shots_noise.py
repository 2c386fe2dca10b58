"""Finite shots and depolarizing noise: statistics of the sampled backend and the eval/export CLI path."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from fit_helpers import tiny_cli_flags, tiny_config
from qcompress.backends import get_backend
from qcompress.backends.sampled import MAX_NOISY_QUBITS, SamplerBackend, parse_noise, sampler_backend
from qcompress.circuits import build_ansatz, init_weights
from qcompress.errors import CapabilityError, InputError


def _circuit(n_qubits: int = 4, depth: int = 3):
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=depth)
    weights = init_weights(ansatz, seed=3, dtype=torch.float64)
    exact = get_backend("quimb").compile(ansatz, dtype=torch.float64).probabilities(weights)
    return ansatz, weights, exact


def _tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def test_shot_estimates_converge_to_exact_probabilities():
    """E[TV] <= sqrt(2^N / K) / 2 for a multinomial estimate; with a fixed seed the error must sit
    under twice that bound at every K, and shrink by ~sqrt(ratio) as shots grow."""
    ansatz, weights, exact = _circuit()
    errors = []
    for shots in (100, 10_000, 300_000):
        estimate = SamplerBackend(shots=shots, seed=11).compile(ansatz, torch.float64).probabilities(weights)
        assert estimate.sum().item() == pytest.approx(1.0)
        assert torch.allclose(estimate * shots, torch.round(estimate * shots), atol=1e-6)  # frequencies of whole shots
        errors.append(_tv(estimate, exact))
        assert errors[-1] <= math.sqrt(2**ansatz.n_qubits / shots)
    assert errors[1] < errors[0] / 3 and errors[2] < errors[1] / 3


def test_sampling_is_seeded_and_each_circuit_gets_its_own_stream():
    ansatz, weights, _ = _circuit()
    first = SamplerBackend(shots=500, seed=5)
    a, b = first.compile(ansatz).probabilities(weights), first.compile(ansatz).probabilities(weights)
    again = SamplerBackend(shots=500, seed=5).compile(ansatz).probabilities(weights)
    assert torch.equal(a, again)
    assert not torch.equal(a, b)


def test_every_read_out_of_a_generator_is_measured():
    """A generator read in Z and X has two circuits: --shots must sample both, each from its own state."""
    from qcompress.backends.sampled import SampledCircuit, measure_generators
    from qcompress.generators import QPAGenerator, QPAGeneratorConfig

    generator = QPAGenerator(300, QPAGeneratorConfig(n_mlp=16, depth=2, hidden=(8,), readout="z+x"))
    exact = generator.probabilities().detach()
    assert measure_generators(generator, SamplerBackend(shots=200_000, seed=3)) == 2
    measured = generator.probabilities()
    assert all(isinstance(r.circuit, SampledCircuit) for r in generator.readouts)
    assert not torch.equal(measured, exact) and (measured - exact).abs().max() < 0.01


def test_noiseless_density_matrix_matches_the_statevector_and_noise_pulls_towards_uniform():
    ansatz, weights, exact = _circuit()
    noiseless = SamplerBackend(depolarizing=0.0).compile(ansatz, torch.float64).probabilities(weights)
    assert torch.allclose(noiseless, exact, atol=1e-10)
    uniform = torch.full_like(exact, 1.0 / exact.numel())
    distances = [
        _tv(SamplerBackend(depolarizing=p).compile(ansatz, torch.float64).probabilities(weights), uniform)
        for p in (0.0, 0.01, 0.1, 0.75)
    ]
    assert distances == sorted(distances, reverse=True)
    assert distances[-1] < 0.05 < distances[0]  # a fully depolarizing channel (p=3/4 per qubit) forgets the state


def test_noisy_shots_converge_to_the_exact_noisy_probabilities():
    ansatz, weights, _ = _circuit(n_qubits=3)
    noisy = SamplerBackend(depolarizing=0.05).compile(ansatz, torch.float64).probabilities(weights)
    sampled = SamplerBackend(shots=200_000, depolarizing=0.05, seed=1).compile(ansatz, torch.float64).probabilities(weights)
    assert _tv(sampled, noisy) <= math.sqrt(2**3 / 200_000)


def test_noise_beyond_the_density_matrix_limit_is_refused_in_one_line():
    ansatz = build_ansatz("qpa", n_qubits=MAX_NOISY_QUBITS + 1, depth=1)
    with pytest.raises(CapabilityError, match="density-matrix") as error:
        SamplerBackend(depolarizing=0.01).compile(ansatz)
    assert "\n" not in str(error.value)
    SamplerBackend(shots=10).compile(ansatz)  # shots alone have no such limit


@pytest.mark.parametrize("spec", ["depolarising:0.1", "depolarizing", "depolarizing:x", "depolarizing:1.5"])
def test_bad_noise_specs_say_how_to_write_one(spec):
    with pytest.raises(InputError, match="depolarizing:p"):
        parse_noise(spec)


def test_only_sampler_backends_measure():
    assert sampler_backend("sampled", None, None, 0) is None
    assert parse_noise("depolarizing:0.01") == 0.01
    with pytest.raises(InputError, match="does not measure circuits; choose one of: .*sampled"):
        sampler_backend("quimb", 100, None, 0)


@pytest.fixture(scope="module")
def qpa_run(tmp_path_factory, tiny_gpt2_dir, corpus_dir):
    """One tiny trained QPA-LoRA run (3 qubits), shared by the CLI tests below."""
    from qcompress.training.fit import fit

    run = tmp_path_factory.mktemp("qpa") / "run"
    fit(tiny_config(tiny_gpt2_dir, corpus_dir, lr=1e-2, eval_every=0), run)
    return run


def _eval(run_cli, target, corpus_dir, *flags):
    window = ["--seq-len", "64", "--stride", "32", "--max-tokens", "256", "--eval-data", corpus_dir / "heldout.txt"]
    result = run_cli("eval", target, *window, *flags, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_eval_with_shots_approaches_exact_perplexity(run_cli, qpa_run, corpus_dir):
    exact = _eval(run_cli, qpa_run, corpus_dir)["perplexity"]
    few = _eval(run_cli, qpa_run, corpus_dir, "--shots", "5")
    many = _eval(run_cli, qpa_run, corpus_dir, "--shots", "1000000")
    noisy = _eval(run_cli, qpa_run, corpus_dir, "--noise", "depolarizing:0.0")
    assert many["measurement"] == {"backend": "sampled", "shots": 1_000_000, "depolarizing": None, "seed": 0}
    assert abs(many["perplexity"] - exact) < abs(few["perplexity"] - exact)
    assert many["perplexity"] == pytest.approx(exact, rel=1e-3)
    assert noisy["perplexity"] == pytest.approx(exact, rel=1e-4)


def test_export_from_shots_records_the_measurement(run_cli, qpa_run, corpus_dir, tmp_path):
    artifact = tmp_path / "artifact"
    exported = run_cli("export", qpa_run, "--out", artifact, "--format", "safetensors", "--shots", "1000", "--seed", "4")
    assert exported.exit_code == 0, exported.stderr
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["source"]["probabilities"] == {"backend": "sampled", "shots": 1000, "depolarizing": None, "seed": 4}
    exact = run_cli("export", qpa_run, "--out", tmp_path / "exact", "--format", "safetensors")
    assert exact.exit_code == 0, exact.stderr
    assert json.loads((tmp_path / "exact" / "manifest.json").read_text())["source"]["probabilities"] == "exact"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shots", "10"], "not a run directory of a qpa-\\* method"),
        (["--backend", "sampled", "--noise", "white:0.1"], "depolarizing:p"),
    ],
)
def test_measurement_mistakes_are_one_line_errors(run_cli, tiny_gpt2_dir, tmp_path, args, message):
    result = run_cli("export", tiny_gpt2_dir, "--out", tmp_path / "a", "--format", "safetensors", *args)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(message, errors[0])


def test_classical_runs_have_no_circuit_to_measure(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    run = tmp_path / "lora"
    assert run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--method", "lora", "--out", run).exit_code == 0
    result = run_cli("eval", run, "--shots", "100")
    assert result.exit_code == 2 and "method 'lora' has none" in result.stderr
