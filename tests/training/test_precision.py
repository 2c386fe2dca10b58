"""--precision and --gradient-checkpointing: what changes dtype, what never does, and that a run in
reduced precision still resumes exactly and exports in float32."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from fit_helpers import tiny_cli_flags, tiny_config
from qcompress.methods import get_method
from qcompress.models import load_model
from qcompress.training.fit import fit, prepare_model
from qcompress.training.precision import Precision

CPU = torch.device("cpu")


def test_bf16_stores_the_frozen_base_in_bf16_and_keeps_trained_tensors_and_circuits_in_float32(tiny_llama_dir, corpus_dir):
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora")
    adapted = get_method("qpa-lora").attach(load_model(str(tiny_llama_dir)).model, config)
    params = adapted.trainable_parameters()
    circuit_buffers = {name: b.dtype for name, b in adapted.generated.named_buffers()}
    precision = Precision("bf16", CPU)
    precision.prepare(adapted.model, params)
    trained = {id(p) for p in params}
    frozen = [p for name, p in adapted.model.named_parameters() if id(p) not in trained and not name.endswith(".original")]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)  # the generated tensors' stored starts: see below
    assert all(p.dtype == torch.float32 for p in params)
    assert {name: b.dtype for name, b in adapted.generated.named_buffers()} == circuit_buffers
    with precision.autocast():
        generated = adapted.generated.refresh()
        logits = adapted.model(input_ids=torch.zeros(1, 8, dtype=torch.long)).logits
    assert generated.dtype == torch.float32  # the generator ran with autocast off
    assert logits.dtype == torch.bfloat16


def test_bf16_keeps_a_generated_tensor_s_stored_start_in_float32(tiny_llama_dir, corpus_dir):
    """qpa-dora's magnitude is its stored start (the base weights' norms) plus the generated change:
    rounded to bf16, the fit would train around a start the float32 export does not have."""
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qpa-dora")
    adapted = get_method("qpa-dora").attach(load_model(str(tiny_llama_dir)).model, config)
    starts = {name: p.detach().clone() for name, p in adapted.model.named_parameters() if name.endswith(".original")}
    assert any("magnitude" in name for name in starts)
    Precision("bf16", CPU).prepare(adapted.model, adapted.trainable_parameters())
    after = dict(adapted.model.named_parameters())
    assert all(after[name].dtype == torch.float32 and torch.equal(after[name], start) for name, start in starts.items())
    assert any(p.dtype == torch.bfloat16 for name, p in after.items() if "base_layer" in name)


def test_fp32_changes_nothing(tiny_gpt2_dir, corpus_dir):
    config = tiny_config(tiny_gpt2_dir, corpus_dir, method="lora")
    adapted = get_method("lora").attach(load_model(str(tiny_gpt2_dir)).model, config)
    before = {name: p.dtype for name, p in adapted.model.named_parameters()}
    Precision("fp32", CPU).prepare(adapted.model, adapted.trainable_parameters())
    assert {name: p.dtype for name, p in adapted.model.named_parameters()} == before
    assert not Precision("fp32", CPU).scaler.is_enabled() and Precision("fp16", CPU).scaler.is_enabled()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_fits_and_exports_in_float32(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path, precision):
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    flags = [*tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--method", "qpa-lora", "--lr", "3e-3", "--device", "cpu"]
    fitted = run_cli("fit", *flags, "--precision", precision, "--out", run, "--json")
    assert fitted.exit_code == 0, fitted.stderr
    summary = json.loads(fitted.stdout)
    assert summary["precision"] == precision and summary["peak_gpu_mb"] is None
    assert summary["eval_perplexity"] < summary["initial_eval_perplexity"]
    exported = run_cli("export", run, "--out", artifact, "--format", "safetensors")
    assert exported.exit_code == 0, exported.stderr
    with safe_open(str(artifact / "model" / "model.safetensors"), "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"F32"}


def test_fp16_resume_restores_the_loss_scaler_exactly(tiny_gpt2_dir, corpus_dir, tmp_path):
    config = tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", precision="fp16", device="cpu")
    fit(config, tmp_path / "whole")
    fit(config, tmp_path / "resumed", stop_after=4)
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert "scaler" in state["state"]
    fit(None, tmp_path / "resumed", resume=True)
    for name in ("generator.safetensors", "checkpoint/trainable.safetensors"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes()


def test_gradient_checkpointing_trains_the_same_run(tiny_llama_dir, corpus_dir, tmp_path):
    """Recomputing activations must not change what is learned (only memory and time)."""
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora", gradient_checkpointing=True)
    adapted = get_method("qpa-lora").attach(load_model(str(tiny_llama_dir)).model, config)
    prepare_model(adapted, config, CPU, Precision("fp32", CPU))
    assert any(getattr(module, "gradient_checkpointing", False) is True for module in adapted.model.modules())
    plain = fit(tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora", device="cpu"), tmp_path / "plain").summary
    recomputed = fit(tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora", device="cpu", gradient_checkpointing=True), tmp_path / "gc").summary
    assert recomputed["eval_perplexity"] == pytest.approx(plain["eval_perplexity"], rel=1e-5)
    plain_losses = [row["loss"] for row in map(json.loads, (tmp_path / "plain" / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    gc_losses = [row["loss"] for row in map(json.loads, (tmp_path / "gc" / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert gc_losses == pytest.approx(plain_losses, rel=1e-5)


def test_qtha_circuit_runs_in_float32_inside_a_bf16_forward(tiny_llama_dir, corpus_dir):
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qtha")
    adapted = get_method("qtha").attach(load_model(str(tiny_llama_dir)).model, config)
    seen = []
    adapted.model.qtha_circuit.register_forward_hook(lambda module, args, out: seen.append((args[1].dtype, out.dtype)))
    precision = Precision("bf16", CPU)
    precision.prepare(adapted.model, adapted.trainable_parameters())
    with precision.autocast():
        adapted.model(input_ids=torch.zeros(1, 8, dtype=torch.long)).logits.float().sum().backward()
    assert seen and set(seen) == {(torch.float32, torch.float32)}
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in adapted.trainable_parameters())
