"""QTHA through the CLI: fit -> export (ONNX only: the circuit stays, as plain tensor ops) -> ORT generate / eval."""

from __future__ import annotations

import json

import pytest

from fit_helpers import tiny_cli_flags


def test_fit_export_generate_and_eval_agree(run_cli, tiny_llama_dir, corpus_dir, tmp_path):
    """One layer kind here (collapse parity on both kinds is in test_qtha.py): a fit and an ONNX export are slow."""
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    fitted = run_cli("fit", *tiny_cli_flags(tiny_llama_dir, corpus_dir), "--method", "qtha", "--qtha-inner", "16",
                     "--out", run, "--lr", "1e-2", "--json")
    assert fitted.exit_code == 0, fitted.stderr
    summary = json.loads(fitted.stdout)
    assert summary["counts"]["qubits"] == 4 and summary["eval_perplexity"] != summary["initial_eval_perplexity"]
    assert "TT_A" in (run / "circuit.txt").read_text() and (run / "adapter.safetensors").is_file()

    refused = run_cli("export", run, "--out", tmp_path / "refused", "--format", "safetensors,onnx")
    assert refused.exit_code == 4 and "--format onnx" in refused.stderr
    exported = run_cli("export", run, "--out", artifact)
    assert exported.exit_code == 0, exported.stderr
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["method"] == "qtha" and list(manifest["formats"]) == ["onnx"]
    assert "safetensors" in manifest["not_exported"] and not (artifact / "model").exists()
    assert max(manifest["formats"]["onnx"]["parity"]["max_abs_diff"].values()) <= 1e-4
    # the circuit graph stays shape-inferable, so ORT's residual + RMSNorm fusion applies as for a plain model
    assert manifest["formats"]["onnx"]["ort_fusions"]["fused"].get("SkipSimplifiedLayerNormalization") == 4

    generated = run_cli("generate", artifact, "--prompt", "the lady", "--max-new-tokens", "8")
    assert generated.exit_code == 0, generated.stderr
    window = ["--seq-len", "64", "--stride", "32", "--max-tokens", "256", "--eval-data", corpus_dir / "heldout.txt", "--json"]
    from_run = json.loads(run_cli("eval", run, *window).stdout)
    from_artifact = json.loads(run_cli("eval", artifact, *window).stdout)
    assert from_artifact["perplexity"] == pytest.approx(from_run["perplexity"], rel=1e-4)
