"""The qcompress-qsim plugin (plugins/qcompress-qsim): found through its entry point and used for shots.

Skipped, with the install command as the reason, when the plugin package is not installed.
"""

from __future__ import annotations

import json
import math
from importlib.metadata import entry_points

import pytest
import torch

from fit_helpers import tiny_config
from qcompress import registry
from qcompress.backends import get_backend
from qcompress.backends.sampled import SamplerBackend, sampler_backend
from qcompress.circuits import build_ansatz, init_weights

pytestmark = pytest.mark.skipif(
    "qsim" not in {ep.name for ep in entry_points(group="qcompress.backends")},
    reason="plugin not installed: pip install -e plugins/qcompress-qsim",
)


def test_plugin_is_discovered_through_its_entry_point_not_registered_at_run_time():
    (entry,) = [ep for ep in entry_points(group="qcompress.backends") if ep.name == "qsim"]
    assert entry.value == "qcompress_qsim:QsimBackend"
    backend = registry.get("backend", "qsim")
    assert issubclass(backend, SamplerBackend) and backend.name == "qsim" and not backend.differentiable
    assert "qsim" in registry.names("backend")


def test_qsim_shots_are_seeded_and_converge_to_exact_probabilities():
    ansatz = build_ansatz("qpa", n_qubits=4, depth=3)
    weights = init_weights(ansatz, seed=3, dtype=torch.float64)
    exact = get_backend("quimb").compile(ansatz, dtype=torch.float64).probabilities(weights)

    def estimate(shots: int, seed: int) -> torch.Tensor:
        return sampler_backend("qsim", shots, None, seed).compile(ansatz, torch.float64).probabilities(weights)

    assert torch.equal(estimate(1000, 7), estimate(1000, 7))
    assert not torch.equal(estimate(1000, 7), estimate(1000, 8))
    errors = [0.5 * float((estimate(shots, 7) - exact).abs().sum()) for shots in (100, 100_000)]
    assert errors[0] <= math.sqrt(16 / 100) and errors[1] <= math.sqrt(16 / 100_000)
    assert errors[1] < errors[0] / 5


def test_eval_through_the_plugin_records_it(run_cli, tiny_llama_dir, corpus_dir, tmp_path):
    from qcompress.training.fit import fit

    run = tmp_path / "run"
    fit(tiny_config(tiny_llama_dir, corpus_dir, steps=2, eval_every=0), run)
    window = ["--seq-len", "64", "--stride", "32", "--max-tokens", "256", "--eval-data", corpus_dir / "heldout.txt"]
    result = run_cli("eval", run, *window, "--shots", "2000", "--backend", "qsim", "--seed", "3", "--json")
    assert result.exit_code == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["measurement"] == {"backend": "qsim", "shots": 2000, "depolarizing": None, "seed": 3}
    exact = json.loads(run_cli("eval", run, *window, "--json").stdout)
    assert measured["perplexity"] == pytest.approx(exact["perplexity"], rel=0.05)
    without_shots = run_cli("eval", run, "--backend", "qsim", "--noise", "depolarizing:0.01")
    assert without_shots.exit_code == 2 and "add --shots" in without_shots.stderr
