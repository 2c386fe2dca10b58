"""The one-PEFT-tuner methods (fourierft, vblora, ia3, tinylora) on tiny GPT-2 (Conv1D) and tiny Llama.

Each must: train exactly what PEFT reports, take its ``--set`` options into the PEFT config, restore
from its saved state bit for bit, collapse by PEFT's merge to a plain model with the same outputs,
resume to the state an uninterrupted run reaches, export with ONNX parity, and refuse a bad option
or one PEFT cannot do on these layers in one line (exit 2).
"""

from __future__ import annotations

import json

import pytest
import torch

from collapse_check import assert_collapse_matches_unmerged
from fit_helpers import assert_resume_reaches_the_straight_run, tiny_cli_flags, tiny_config
from fs_helpers import error_line
from qcompress.methods import get_method
from qcompress.methods.peft_lora import lora_budget
from qcompress.models import load_model

#: options small enough for the tiny models (their smallest layer, Llama's v_proj, is 32 -> 16)
TINY_OPTIONS = {
    "fourierft": {"n_frequency": 64},
    "vblora": {"num_vectors": 8},
    "ia3": {},
    "tinylora": {"u": 8},
}
METHODS = list(TINY_OPTIONS)


def _attach(method: str, model_dir, corpus_dir, options: dict | None = None, **overrides):
    config = tiny_config(model_dir, corpus_dir, method=method, method_config=options or TINY_OPTIONS[method], **overrides)
    return config, get_method(method).attach(load_model(str(model_dir)).model, config)


def _ids(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(0))


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("method", METHODS)
def test_counts_are_peft_s_and_state_and_collapse_round_trip(tiny_model_dir, corpus_dir, method):
    config, adapted = _attach(method, tiny_model_dir, corpus_dir)
    trainable = adapted.trainable_parameters()
    assert {id(p) for p in trainable} == {id(p) for p in adapted.model.parameters() if p.requires_grad}
    peft_trainable, _ = adapted.model.get_nb_trainable_parameters()
    base = load_model(str(tiny_model_dir)).model
    assert adapted.counts() == {
        "trainable": peft_trainable, "adapter_weights": peft_trainable, "lora_equivalent": lora_budget(base, config),
    }
    with torch.no_grad():  # move every trained tensor, so the restore and the merge are really tested
        for p in trainable:
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    ids = _ids(base.config.vocab_size)
    restored = get_method(method).attach(base, config)
    restored.load_trainable_state(adapted.trainable_state())
    torch.testing.assert_close(_logits(restored.model, ids), _logits(adapted.model, ids), atol=0, rtol=0)
    assert_collapse_matches_unmerged(restored, ids)


@pytest.mark.parametrize("method, options, expected", [
    ("fourierft", {"n_frequency": 32, "scaling": 100.0, "frequency_seed": 5, "zero_init": True},
     {"n_frequency": 32, "scaling": 100.0, "random_loc_seed": 5, "init_weights": True}),
    ("vblora", {"rank": 2, "num_vectors": 6, "vector_length": 8, "topk": 3, "init_bank_bound": 0.05, "init_logits_std": 0.2},
     {"r": 2, "num_vectors": 6, "vector_length": 8, "topk": 3, "init_vector_bank_bound": 0.05, "init_logits_std": 0.2}),
    ("tinylora", {"rank": 3, "u": 5, "weight_tying": 1.0, "projection_seed": 7},
     {"r": 3, "u": 5, "weight_tying": 1.0, "projection_seed": 7}),
])
def test_set_options_reach_the_peft_config(tiny_llama_dir, corpus_dir, method, options, expected):
    _, adapted = _attach(method, tiny_llama_dir, corpus_dir, options)
    peft_config = vars(adapted.model.peft_config["default"])
    assert {key: peft_config[key] for key in expected} == expected


def test_tinylora_full_tying_trains_one_vector(tiny_llama_dir, corpus_dir):
    _, adapted = _attach("tinylora", tiny_llama_dir, corpus_dir, {"u": 5, "weight_tying": 1.0})
    assert adapted.counts()["trainable"] == 5


def test_fourierft_zero_init_starts_at_the_base_model(tiny_gpt2_dir, corpus_dir):
    base_model = load_model(str(tiny_gpt2_dir)).model
    ids = _ids(base_model.config.vocab_size)
    base = _logits(base_model, ids)
    _, adapted = _attach("fourierft", tiny_gpt2_dir, corpus_dir, {"n_frequency": 64, "zero_init": True})
    torch.testing.assert_close(_logits(adapted.model, ids), base, atol=0, rtol=0)


@pytest.mark.parametrize("model, targets, feedforward, widths", [
    ("llama", "q_proj,v_proj,down_proj", "down_proj", 32 + 16 + 64),  # down_proj 64 -> 32: its input is scaled
    ("gpt2", "c_attn,mlp.c_proj", "mlp.c_proj", 96 + 128),  # c_fc's 128 outputs enter mlp.c_proj
])
def test_ia3_feedforward_scales_inputs_and_merges(tiny_gpt2_dir, tiny_llama_dir, corpus_dir, model, targets, feedforward, widths):
    model_dir = tiny_llama_dir if model == "llama" else tiny_gpt2_dir
    _, adapted = _attach("ia3", model_dir, corpus_dir, {"feedforward": [feedforward]}, **{"adapter.targets": targets})
    scaled = {name for name, module in adapted.model.named_modules() if getattr(module, "is_feedforward", False)}
    assert scaled and all(name.endswith(feedforward) for name in scaled)
    assert adapted.counts()["trainable"] == 2 * widths
    with torch.no_grad():
        for p in adapted.trainable_parameters():
            p.mul_(1 + 0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    assert_collapse_matches_unmerged(adapted, _ids(adapted.model.config.vocab_size))


@pytest.mark.parametrize("method", METHODS)
def test_resume_reaches_the_uninterrupted_state(tiny_llama_dir, corpus_dir, tmp_path, method):
    config = tiny_config(tiny_llama_dir, corpus_dir, method=method, method_config=TINY_OPTIONS[method],
                         steps=4, eval_every=0, checkpoint_every=2)
    assert_resume_reaches_the_straight_run(config, tmp_path, "adapter.safetensors")


#: each method exported from one tiny model by default and from the other under ``slow`` (an ONNX
#: export is most of a test's time; the merge itself is checked on both models above, in float64)
EXPORTS = [
    pytest.param(model, method, marks=[pytest.mark.slow] if (i + j) % 2 else [])
    for i, method in enumerate(METHODS) for j, model in enumerate(("gpt2", "llama"))
]


@pytest.mark.parametrize("model, method", EXPORTS)
def test_fit_and_export_with_onnx_parity(run_cli, tiny_gpt2_dir, tiny_llama_dir, corpus_dir, tmp_path, model, method):
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    model_dir = tiny_gpt2_dir if model == "gpt2" else tiny_llama_dir
    sets = [arg for key, value in TINY_OPTIONS[method].items() for arg in ("--set", f"{key}={value}")]
    fitted = run_cli("fit", *tiny_cli_flags(model_dir, corpus_dir), "--steps", "2", "--method", method, *sets, "--out", run)
    assert fitted.exit_code == 0, fitted.stderr
    assert json.loads((run / "qcompress.json").read_text())["config"]["method_config"] == TINY_OPTIONS[method]
    exported = run_cli("export", run, "--out", artifact)
    assert exported.exit_code == 0, exported.stderr
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["method"] == method and {"safetensors", "onnx"} <= set(manifest["formats"])
    assert max(manifest["formats"]["onnx"]["parity"]["max_abs_diff"].values()) <= 1e-4


@pytest.mark.parametrize("method, flags, message", [
    ("fourierft", ["--set", "n_frequency=0"], "invalid method_config of 'fourierft': n_frequency"),
    ("fourierft", ["--set", "n_frequency=1000"], "fourierft n_frequency 1000 exceeds the 512 weights of the smallest adapted layer: --set n_frequency=512 or less"),
    ("fourierft", ["--set", "n_frequency=64", "--dropout", "0.1"], "method 'fourierft' has no dropout (got --dropout 0.1): drop --dropout"),
    ("vblora", ["--set", "topk=9", "--set", "num_vectors=8"], "invalid method_config of 'vblora': topk 9 exceeds num_vectors 8"),
    ("vblora", ["--set", "vector_length=5"], "vblora vector_length 5 does not divide every adapted layer's width (their common divisor is 16)"),
    ("ia3", ["--set", "feedforward=[down_proj]"], "ia3 feedforward 'down_proj' is not an adapted layer: add it to --targets"),
    ("ia3", ["--set", "feedforward=down_proj"], "invalid method_config of 'ia3': feedforward"),
    ("tinylora", ["--set", "weight_tying=2"], "invalid method_config of 'tinylora': weight_tying"),
])
def test_a_bad_option_is_one_line_exit_2(run_cli, tiny_llama_dir, corpus_dir, tmp_path, method, flags, message):
    result = run_cli("fit", *tiny_cli_flags(tiny_llama_dir, corpus_dir), "--method", method, *flags, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert message in error_line(result.stderr)
