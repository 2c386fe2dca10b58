"""On a CUDA machine: every method fits, resumes, evaluates and exports from a GPU-trained run,
and follows the CPU run. Skipped where there is no GPU (CI); `tools/gpu_check.sh` runs them.

Bitwise identity is not promised on CUDA (atomics, other kernels), so GPU results are compared to
the CPU's with a tolerance; determinism tests elsewhere pin ``--device cpu``.
"""

from __future__ import annotations

import json

import pytest
import torch

from fit_helpers import tiny_cli_flags

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

METHODS = ["lora", "qpa-lora", "dora", "qpa-dora", "ffa", "qpa-ffa", "prefix", "qpa-prefix", "qtha"]


def losses(run) -> list[float]:
    return [row["loss"] for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in row]


@pytest.mark.parametrize("method", [*METHODS, "qpa-lora:classical", "qpa-lora:layer"])
def test_every_method_fits_resumes_evaluates_and_exports_from_the_gpu(run_cli, tiny_llama_dir, corpus_dir, tmp_path, method):
    name, _, variant = method.partition(":")
    extra = {"classical": ["--backend", "classical"], "layer": ["--generator-scope", "layer"]}.get(variant, [])
    flags = [*tiny_cli_flags(tiny_llama_dir, corpus_dir), "--method", name, *extra]
    gpu, cpu = tmp_path / "gpu", tmp_path / "cpu"
    fitted = run_cli("fit", *flags, "--device", "cuda", "--out", gpu, "--json")
    assert fitted.exit_code == 0, fitted.stderr
    summary = json.loads(fitted.stdout)
    assert summary["device"].startswith("cuda") and summary["peak_gpu_mb"] > 0
    assert run_cli("fit", *flags, "--device", "cpu", "--out", cpu).exit_code == 0
    assert losses(gpu) == pytest.approx(losses(cpu), rel=2e-3)
    assert run_cli("eval", gpu).exit_code == 0
    exported = run_cli("export", gpu, "--out", tmp_path / "artifact", "--format", "onnx")
    assert exported.exit_code == 0, exported.stderr


def test_resume_on_the_gpu_continues_the_checkpoint(tiny_gpt2_dir, corpus_dir, tmp_path):
    from fit_helpers import tiny_config
    from qcompress.training.fit import fit

    config = tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", device="cuda")
    whole = fit(config, tmp_path / "whole").summary
    fit(config, tmp_path / "resumed", stop_after=4)
    resumed = fit(None, tmp_path / "resumed", resume=True).summary
    assert resumed["eval_perplexity"] == pytest.approx(whole["eval_perplexity"], rel=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_the_gpu(run_cli, tiny_llama_dir, corpus_dir, tmp_path, precision):
    flags = [*tiny_cli_flags(tiny_llama_dir, corpus_dir), "--method", "qpa-lora", "--device", "cuda"]
    fitted = run_cli("fit", *flags, "--precision", precision, "--gradient-checkpointing", "--out", tmp_path / "run", "--json")
    assert fitted.exit_code == 0, fitted.stderr
    summary = json.loads(fitted.stdout)
    assert summary["precision"] == precision and summary["eval_perplexity"] < summary["initial_eval_perplexity"]
