"""``qcompress inspect`` end to end through the CLI."""

import json
import re

import pytest


def test_inspect_prints_paper_counts(run_cli):
    result = run_cli("inspect", "--weights", "460800")
    assert result.exit_code == 0, result.stderr
    for text in ("qubits N", "225 of 256", "460,800", "105,248", "4.38x"):
        assert text in result.stdout


@pytest.fixture
def restore_torch_threads():
    """--threads changes torch's process-wide setting; put it back for the tests that follow."""
    import torch

    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_inspect_json_diagram_and_timing(run_cli, restore_torch_threads):
    result = run_cli(
        "inspect", "--target-weights", "100", "--n-mlp", "16", "--depth", "2", "--hidden", "8,8",
        "--activation", "relu", "--diagram", "--time", "--threads", "1", "--json",
    )
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["n_qubits"], info["n_chunks"], info["generated_weights"]) == (3, 7, 100)
    assert info["trainable_parameters"] == 6 + (4 * 8 + 8) + (8 * 8 + 8) + (8 * 16 + 16)
    timing = info["timing"]
    assert timing["pass"] == "forward+backward" and timing["threads"] == 1
    assert len(timing["samples_ms"]) == 5 and timing["median_ms"] == sorted(timing["samples_ms"])[2]  # 5 timed calls, warm-up excluded
    assert "Ry(theta_1_2)" in info["diagram"]


def test_inspect_counts_issue_21s_richest_generator(run_cli):
    """RY-RZ at L = 64 read in Z and X on SmolLM2's LoRA r=8 shapes: the sweep's qpa-lora-36k-rich, 36,008 numbers."""
    result = run_cli("inspect", "--weights", "460800", "--n-mlp", "512", "--hidden", "32,62", "--activation", "gelu",
                     "--depth", "64", "--ansatz", "ry-rz", "--readout", "z+x", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["circuit_parameters"], info["trainable_parameters"], info["readout"]) == (2 * 10 * 64 + 10, 36_008, "z+x")
    assert info["mlp_parameters"] == (12 * 32 + 32) + (32 * 62 + 62) + (62 * 512 + 512)


def test_inspect_cirq_backend_times_forward_only(run_cli):
    result = run_cli("inspect", "--weights", "64", "--n-mlp", "16", "--depth", "1", "--backend", "cirq", "--time")
    assert result.exit_code == 0, result.stderr
    assert re.search(r"time \(forward\)\s+[\d.]+ ms", result.stdout), result.stdout


def test_inspect_bad_inputs_are_one_line_errors(run_cli):
    for args, message in [
        ((), "missing --weights"),
        (("--weights", "0"), "at least 1 weight"),
        (("--weights", "10", "--hidden", "3,x"), "--hidden must be comma-separated integers"),
        (("--weights", "10", "--activation", "foo"), "unknown activation 'foo'"),
        (("--weights", "10", "--backend", "nope"), "unknown backend 'nope'"),
        (("--weights", "10", "--readout", "z+y"), "readout 'z+y' must join distinct bases"),
        (("--weights", "10", "--config", "x.yaml"), "--config describes a fit's options: add --method NAME"),
        (("--weights", "10", "--n-mlp", "0"), "n_mlp: Input should be greater than or equal to 1 (got 0): change --n-mlp"),
        (("--method", "lora", "--rank", "0"), "adapter.rank: Input should be greater than or equal to 1 (got 0): change --rank"),
    ]:
        result = run_cli("inspect", *args)
        assert result.exit_code == 2, args
        assert message in result.stderr and result.stderr.strip().count("\n") == 0


def test_inspect_method_on_a_model_shows_qtha_shapes_circuit_and_counts(run_cli, tiny_llama_dir):
    result = run_cli("inspect", "--method", "qtha", "--model", str(tiny_llama_dir), "--rank", "3", "--qtha-inner", "8",
                     "--qtha-bond", "2", "--qtha-layers", "2")
    assert result.exit_code == 0, result.stdout
    assert "QTHA: r=3 qubits, L=2 layers" in result.stdout and "TT_A" in result.stdout and "TT_B" in result.stdout
    assert "Ry(a_0)" in result.stdout and "of LoRA r=3" in result.stdout
    as_json = run_cli("inspect", "--method", "qtha", "--model", str(tiny_llama_dir), "--rank", "3", "--json")
    payload = json.loads(as_json.stdout)
    assert payload["counts"]["qubits"] == 3 and 0 < payload["fraction_of_lora"]
    both = run_cli("inspect", "--method", "qtha", "--weights", "100")
    assert both.exit_code == 2 and "give one of them" in both.stderr


def test_inspect_method_reads_a_fits_yaml(run_cli, tiny_llama_dir, tmp_path):
    """--config with --method: a generator variant's qpa: section counts as fit would count it (GELU changes no
    count; readout z+x adds one MLP input, i.e. hidden[0] = 8 weights)."""
    variant = tmp_path / "variant.yaml"
    variant.write_text("qpa: {hidden: [8, 8], readout: z+x, activation: gelu}\n")
    flags = ["inspect", "--method", "qpa-lora", "--model", str(tiny_llama_dir), "--n-mlp", "64", "--json"]
    (tmp_path / "plain.yaml").write_text("qpa: {hidden: [8, 8]}\n")
    plain = json.loads(run_cli(*flags, "--config", str(tmp_path / "plain.yaml")).stdout)
    read_twice = json.loads(run_cli(*flags, "--config", str(variant)).stdout)
    assert read_twice["counts"]["trainable"] == plain["counts"]["trainable"] + 8
