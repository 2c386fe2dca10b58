"""The adapter families (DoRA, feed-forward adapters, prefix tuning), classical and QPA-generated, on tiny GPT-2 and Llama.

Every method must: start exactly at the base model (prefix tuning cannot: even its all-zero
P extra positions take attention weight), train exactly what it reports, restore from its saved
state bit for bit, collapse to a plain model with the same outputs, and survive
fit -> export -> ONNX parity through the CLI.
"""

from __future__ import annotations

import json

import pytest
import torch

from collapse_check import assert_collapse_matches_unmerged
from fit_helpers import tiny_cli_flags, tiny_config
from isolated import PROMPT, logits_without_qcompress
from qcompress.methods import get_method
from qcompress.models import load_model
from qcompress.training.run_dir import load_run

METHODS = ["qpa-lora", "qpa-lora-layer-scope", "qpa-lora-ryrz-zx", "qpa-lora-ryrz-zx-classical", "qpa-lora-layer-conditioned",
           "qpa-lora-factors", "dora", "qpa-dora", "qpa-dora-trained-magnitude", "ffa", "qpa-ffa", "qpa-ffa-factors",
           "prefix", "qpa-prefix"]


def _variant(name: str) -> tuple[str, dict]:
    """(registered method, config overrides) for a test variant name."""
    if name == "qpa-dora-trained-magnitude":
        return "qpa-dora", {"adapter.dora_magnitude": "trained"}
    if name == "qpa-lora-layer-scope":  # one generator per adapted layer instead of one shared
        return "qpa-lora", {"adapter.generator_scope": "layer"}
    if name.endswith("-factors"):  # one chunk per row of A / column of B (down / up), chunks wide enough for both
        return name.removesuffix("-factors"), {"qpa.layout": "factors", "qpa.n_mlp": 128}
    if name == "qpa-lora-layer-conditioned":  # one shared generator told each chunk's layer
        return "qpa-lora", {"qpa.condition": "layer", "qpa.activation": "gelu"}
    if name.startswith("qpa-lora-ryrz-zx"):  # issue 21's generator variants: complex ansatz, two read-outs, GELU
        backend = "classical" if name.endswith("classical") else "quimb"
        return "qpa-lora", {**RYRZ_ZX, "qpa.backend": backend}
    return name, {}


RYRZ_ZX = {"qpa.ansatz": "ry-rz", "qpa.readout": "z+x", "qpa.activation": "gelu"}


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def _ids(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(0))


def _attach(name: str, model_dir, corpus_dir):
    method_name, overrides = _variant(name)
    config = tiny_config(model_dir, corpus_dir, method=method_name, **overrides)
    method = get_method(method_name)
    return method, config, method.attach(load_model(str(model_dir)).model, config)


def _perturb(adapted) -> None:
    """Move every trained tensor away from its start, so merges and restores are really tested."""
    with torch.no_grad():
        for p in adapted.trainable_parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)


@pytest.mark.parametrize("name", METHODS)
def test_starts_at_the_base_model_and_trains_what_it_counts(tiny_model_dir, corpus_dir, name):
    base = load_model(str(tiny_model_dir)).model
    ids = _ids(base.config.vocab_size)
    _, _, adapted = _attach(name, tiny_model_dir, corpus_dir)
    adapted.model.eval()
    if "prefix" not in name:
        torch.testing.assert_close(_logits(adapted.model, ids), _logits(base, ids), atol=1e-5, rtol=0)
    trainable = adapted.trainable_parameters()
    assert {id(p) for p in trainable} == {id(p) for p in adapted.model.parameters() if p.requires_grad}
    assert adapted.counts()["trainable"] == sum(p.numel() for p in trainable)
    adapted.model.train()
    _perturb(adapted)  # at exactly dW = 0 some gradients (e.g. LoRA's A) vanish by construction
    adapted.model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in trainable)


@pytest.mark.parametrize("name", METHODS)
def test_saved_state_restores_exactly_and_collapse_matches(tiny_model_dir, corpus_dir, name):
    method, config, trained = _attach(name, tiny_model_dir, corpus_dir)
    _perturb(trained)
    ids = _ids(trained.model.config.vocab_size)
    trained.model.eval()
    expected = _logits(trained.model, ids)
    restored = method.attach(load_model(str(tiny_model_dir)).model, config)
    restored.load_trainable_state(trained.trainable_state())
    restored.model.eval()
    torch.testing.assert_close(_logits(restored.model, ids), expected, atol=0, rtol=0)
    assert_collapse_matches_unmerged(restored, ids)


def test_dora_magnitude_counts(tiny_gpt2_dir, corpus_dir):
    """tiny GPT-2: 2 layers of c_attn 32 -> 96 at rank 4; DoRA adds one magnitude per output feature."""
    lora_weights, magnitudes = 2 * 4 * (32 + 96), 2 * 96
    dora = _attach("dora", tiny_gpt2_dir, corpus_dir)[2].counts()
    assert dora == {**dora, "trainable": lora_weights + magnitudes, "lora_equivalent": lora_weights, "magnitude": magnitudes}
    generated = _attach("qpa-dora", tiny_gpt2_dir, corpus_dir)[2].counts()
    trained = _attach("qpa-dora-trained-magnitude", tiny_gpt2_dir, corpus_dir)[2].counts()
    assert generated["adapter_weights"] == lora_weights + magnitudes == trained["adapter_weights"]
    qpa_lora = _attach("qpa-lora", tiny_gpt2_dir, corpus_dir)[2].counts()
    assert trained["trainable"] == qpa_lora["trainable"] + magnitudes  # same generator as qpa-lora, plus magnitudes
    assert generated["qubits"] > qpa_lora["qubits"]  # 19 chunks of 64 need 5 qubits, qpa-lora's 16 need 4


def test_saved_magnitudes_must_fit_the_configuration(tiny_llama_dir, corpus_dir):
    from qcompress.errors import InputError

    _, _, generated = _attach("qpa-dora", tiny_llama_dir, corpus_dir)
    _, _, trained = _attach("qpa-dora-trained-magnitude", tiny_llama_dir, corpus_dir)
    with pytest.raises(InputError, match="dora_magnitude"):
        trained.load_trainable_state(generated.trainable_state())


@pytest.mark.parametrize("method", ["dora", "qpa-dora", "ffa", "qpa-ffa", "prefix", "qpa-prefix"])
def test_fit_export_parity(run_cli, tiny_model_dir, corpus_dir, tmp_path, method):
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    flags = [*tiny_cli_flags(tiny_model_dir, corpus_dir), "--steps", "2", "--lr", "1e-2"]
    fitted = run_cli("fit", *flags, "--method", method, "--out", run)
    assert fitted.exit_code == 0, fitted.stderr
    exported = run_cli("export", run, "--out", artifact)
    assert exported.exit_code == 0, exported.stderr
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["method"] == method
    assert max(manifest["formats"]["onnx"]["parity"]["max_abs_diff"].values()) <= 1e-4
    # bottleneck adapters cannot merge into transformers' own layers: ONNX only, and the manifest says why
    assert ("safetensors" in manifest["formats"]) == ("ffa" not in method)
    window = ["--seq-len", "64", "--stride", "32", "--max-tokens", "256", "--eval-data", corpus_dir / "heldout.txt", "--json"]
    from_run = json.loads(run_cli("eval", run, *window).stdout)
    from_artifact = json.loads(run_cli("eval", artifact, *window).stdout)
    assert from_artifact["perplexity"] == pytest.approx(from_run["perplexity"], rel=1e-4)
    if "prefix" in method:  # base weights + a PEFT adapter: plain transformers + peft reproduce the run
        reloaded = logits_without_qcompress(artifact / "model", artifact / "model" / "prefix")
        trained = load_run(run).adapted.model
        with torch.no_grad():
            expected = trained(input_ids=torch.tensor(PROMPT)).logits[0]
        torch.testing.assert_close(reloaded, expected, atol=1e-5, rtol=0)


def test_generator_variant_fits_and_exports_with_parity(run_cli, tiny_llama_dir, corpus_dir, tmp_path):
    """Issue 21's richest generator (RY-RZ ansatz read in Z and X, GELU MLP) deploys like the paper's."""
    config = tmp_path / "variant.yaml"
    config.write_text("qpa: {ansatz: ry-rz, readout: z+x, activation: gelu}\n")
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    flags = [*tiny_cli_flags(tiny_llama_dir, corpus_dir), "--steps", "2", "--lr", "1e-2", "--config", config]
    fitted = run_cli("fit", *flags, "--method", "qpa-lora", "--out", run)
    assert fitted.exit_code == 0, fitted.stderr
    assert load_run(run).config.qpa.readout == "z+x"
    exported = run_cli("export", run, "--out", artifact)
    assert exported.exit_code == 0, exported.stderr
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert max(manifest["formats"]["onnx"]["parity"]["max_abs_diff"].values()) <= 1e-4
