"""qcompress.training.step: the optimiser step, and --decay-to-init pulling the update back toward dW = 0."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from qcompress.errors import InputError
from qcompress.training.fit import fit

from fit_helpers import tiny_config


def lora_b_norm(run) -> float:
    state = load_file(run / "adapter.safetensors")
    return float(sum(tensor.square().sum() for name, tensor in state.items() if "lora_B" in name).sqrt())


def test_a_full_pull_each_step_keeps_the_model_where_it_started(tiny_llama_dir, corpus_dir, tmp_path):
    """lr x decay = 1 puts every tensor back on its initial value after each update: dW stays exactly 0."""
    config = tiny_config(tiny_llama_dir, corpus_dir, method="lora", steps=3, lr=1e-2, schedule="constant", warmup_steps=0,
                         decay_to_init=100.0, eval_every=0)
    summary = fit(config, tmp_path / "run").summary
    assert summary["eval_perplexity"] == summary["initial_eval_perplexity"]
    assert lora_b_norm(tmp_path / "run") == 0.0


def test_a_partial_pull_keeps_the_update_smaller(tiny_llama_dir, corpus_dir, tmp_path):
    common = {"method": "lora", "steps": 4, "lr": 1e-2, "eval_every": 0}
    fit(tiny_config(tiny_llama_dir, corpus_dir, **common), tmp_path / "free")
    fit(tiny_config(tiny_llama_dir, corpus_dir, decay_to_init=30.0, **common), tmp_path / "pulled")
    assert 0 < lora_b_norm(tmp_path / "pulled") < lora_b_norm(tmp_path / "free")


def test_resume_with_the_pull_reproduces_an_uninterrupted_run(tiny_gpt2_dir, corpus_dir, tmp_path):
    """The initial values are not stored: a resumed run rebuilds them from its seed, bit for bit."""
    config = tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", decay_to_init=20.0, eval_every=0)
    fit(config, tmp_path / "straight")
    fit(config, tmp_path / "resumed", stop_after=4)
    fit(None, tmp_path / "resumed", resume=True)
    assert (tmp_path / "resumed" / "generator.safetensors").read_bytes() == (tmp_path / "straight" / "generator.safetensors").read_bytes()


def test_a_pull_past_the_initial_values_is_refused_before_anything_is_written(tiny_llama_dir, corpus_dir, tmp_path):
    config = tiny_config(tiny_llama_dir, corpus_dir, method="lora", lr=1e-2, decay_to_init=200.0)
    with pytest.raises(InputError, match=r"--decay-to-init 200 at lr 0.01 would pull past the initial values .* use at most 100"):
        fit(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError):
        tiny_config(tiny_llama_dir, corpus_dir, decay_to_init=-1.0)
    assert torch.tensor(0.0).lerp(torch.tensor(3.0), 1.0) == 3.0  # the exact landing the first test relies on
