"""qcompress fit / eval end to end on tiny models: learning, resume, determinism, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from fit_helpers import tiny_cli_flags, tiny_config
from qcompress.errors import CheckFailed, InputError
from qcompress.training.config import config_sha256
from qcompress.training.fit import fit


@pytest.mark.parametrize("method, lr", [("lora", 2e-2), ("qpa-lora", 1e-3)])
def test_fit_lowers_heldout_perplexity_and_writes_the_run(tiny_model_dir, corpus_dir, tmp_path, method, lr):
    config = tiny_config(tiny_model_dir, corpus_dir, method=method, lr=lr, steps=30, eval_every=10, checkpoint_every=10)
    result = fit(config, tmp_path / "run")
    summary = result.summary
    assert summary["eval_perplexity"] < summary["initial_eval_perplexity"]
    # --device auto: the GPU when one is present, else the CPU (stated here, not asked of the code under test)
    assert summary["device"].startswith("cuda") if torch.cuda.is_available() else summary["device"] in ("cpu", "mps")
    run = tmp_path / "run"
    state_file = "generator.safetensors" if method == "qpa-lora" else "adapter.safetensors"
    for name in ("qcompress.json", state_file, "metrics.jsonl", "curves.png", "summary.json", "checkpoint/state.json"):
        assert (run / name).is_file(), name
    header = json.loads((run / "qcompress.json").read_text())
    assert header["method"] == method and header["counts"]["trainable"] == summary["counts"]["trainable"]
    assert "torch" in header["versions"]
    if method == "qpa-lora":
        assert "Ry(theta_0_0)" in (run / "circuit.txt").read_text()
    counts = summary["counts"]
    assert summary["fraction_of_lora"] == counts["trainable"] / counts["lora_equivalent"]


def test_resume_reproduces_an_uninterrupted_run(tiny_llama_dir, corpus_dir, tmp_path):
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora", **{"adapter.dropout": 0.1})
    fit(config, tmp_path / "straight")
    interrupted = fit(config, tmp_path / "resumed", stop_after=4)
    assert interrupted.summary == {"stopped_at": 4}
    fit(None, tmp_path / "resumed", resume=True)
    straight = (tmp_path / "straight" / "generator.safetensors").read_bytes()
    assert (tmp_path / "resumed" / "generator.safetensors").read_bytes() == straight
    for name in ("trainable.safetensors", "state.safetensors", "state.json"):
        resumed_file, straight_file = (tmp_path / run / "checkpoint" / name for run in ("resumed", "straight"))
        assert resumed_file.read_bytes() == straight_file.read_bytes(), name
    rows = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))


def test_same_config_and_seed_give_byte_identical_state(tiny_gpt2_dir, corpus_dir, tmp_path):
    config = tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", steps=3, eval_every=0)
    fit(config, tmp_path / "a")
    fit(config, tmp_path / "b")
    assert (tmp_path / "a" / "generator.safetensors").read_bytes() == (tmp_path / "b" / "generator.safetensors").read_bytes()
    other = tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", steps=3, eval_every=0, seed=1)
    fit(other, tmp_path / "c")
    a, c = load_file(tmp_path / "a" / "generator.safetensors"), load_file(tmp_path / "c" / "generator.safetensors")
    assert any(not (a[k] == c[k]).all() for k in a)


def test_non_finite_loss_stops_with_checkpoint_intact(tiny_gpt2_dir, corpus_dir, tmp_path):
    config = tiny_config(tiny_gpt2_dir, corpus_dir, method="lora", lr=1e30, warmup_steps=0, max_grad_norm=0, checkpoint_every=1)
    with pytest.raises(CheckFailed, match=r"loss became .* at step [0-9]+ \(lr .*\): lower --lr"):
        fit(config, tmp_path / "run")
    assert (tmp_path / "run" / "qcompress.json").is_file()


def test_existing_run_is_not_overwritten_without_force(tiny_gpt2_dir, corpus_dir, tmp_path):
    config = tiny_config(tiny_gpt2_dir, corpus_dir, method="lora", steps=2, eval_every=0)
    fit(config, tmp_path / "run")
    before = (tmp_path / "run" / "adapter.safetensors").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        fit(config, tmp_path / "run")
    assert (tmp_path / "run" / "adapter.safetensors").read_bytes() == before
    broken = tiny_config(tiny_gpt2_dir, corpus_dir, method="lora", steps=2, eval_every=0, data=str(tmp_path / "missing"))
    with pytest.raises(InputError):  # --force with a bad input: the old run survives
        fit(broken, tmp_path / "run", force=True)
    assert (tmp_path / "run" / "adapter.safetensors").read_bytes() == before
    with pytest.raises(InputError):  # and a fresh --out is not even created
        fit(broken, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    fit(config, tmp_path / "run", force=True)


def test_cli_fit_then_eval_run_and_base(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    out = tmp_path / "run"
    result = run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--method", "qpa-lora", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["trainable"] > 0
    evaluated = run_cli("eval", out, "--json", "--seq-len", "64", "--stride", "32", "--max-tokens", "256")
    assert evaluated.exit_code == 0, evaluated.stderr
    run_ppl = json.loads(evaluated.stdout)
    summary = json.loads((out / "summary.json").read_text())
    assert run_ppl["kind"] == "run" and run_ppl["perplexity"] == pytest.approx(summary["eval_perplexity"], rel=1e-5)
    base = run_cli("eval", tiny_gpt2_dir, "--eval-data", corpus_dir / "heldout.txt", "--json", "--seq-len", "64", "--stride", "32", "--max-tokens", "256")
    assert base.exit_code == 0, base.stderr
    assert json.loads(base.stdout)["perplexity"] == pytest.approx(summary["initial_eval_perplexity"], rel=1e-5)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--method", "nope"], "unknown method 'nope'"),
        (["--model", "/no/such/model"], "not found"),
        (["--data", "/no/such/corpus.txt"], "not found"),
        (["--seq-len", "100000"], "longer than the model's context"),
        (["--rank", "0"], "rank"),
        (["--n-mlp", "0"], "n_mlp"),
        (["--device", "cuda:7"], "not available on this machine"),
        (["--device", "abacus"], "unknown --device"),
    ],
)
def test_cli_fit_bad_input_is_one_line_nonzero(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path, flags, message):
    result = run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), *flags, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_empty_corpus_and_conflicting_flags(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    result = run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--data", empty, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "empty" in result.stderr
    result = run_cli("fit", "--resume", "--rank", "4", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "not found" in result.stderr  # no run there: dropping flags would not help
    assert run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--out", tmp_path / "run").exit_code == 0
    result = run_cli("fit", "--resume", "--rank", "4", "--threads", "1", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "only --threads and --device may change); drop --rank" in result.stderr


def test_a_resume_may_move_the_run_but_not_change_it(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    """--threads and --device say where the rest of a run trains (another machine, a GPU): a resume takes them,
    keeps the recorded config and hash, and finishes the run."""
    from qcompress.training.run_dir import HEADER

    run = tmp_path / "run"
    fit(tiny_config(tiny_gpt2_dir, corpus_dir, method="lora", threads=1), run, stop_after=4)
    header = (run / HEADER).read_bytes()
    threads = torch.get_num_threads()
    try:
        result = run_cli("fit", "--resume", "--threads", "2", "--device", "cpu", "--out", run, "--json")
        assert torch.get_num_threads() == 2  # in process: the resume set what it was given, not the recorded 1
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 8 and summary["device"] == "cpu" and (run / HEADER).read_bytes() == header
    with pytest.raises(ValueError, match="only of"):
        fit(None, run, resume=True, placement={"precision": "bf16"})
    bad = run_cli("fit", "--resume", "--device", "tpu9", "--out", run)
    assert bad.exit_code == 2 and "--device" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_corrupt_or_foreign_run_dir_is_rejected(run_cli, tiny_gpt2_dir, tiny_llama_dir, corpus_dir, tmp_path):
    out = tmp_path / "run"
    assert run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--out", out).exit_code == 0
    good = (out / "generator.safetensors").read_bytes()
    (out / "generator.safetensors").write_bytes(b"not a safetensors file")
    result = run_cli("eval", out)
    assert result.exit_code == 2 and "corrupt" in result.stderr
    (out / "generator.safetensors").write_bytes(good)
    header = json.loads((out / "qcompress.json").read_text())
    header["config"]["model"] = str(tiny_llama_dir)
    (out / "qcompress.json").write_text(json.dumps(header))
    result = run_cli("eval", out)
    assert result.exit_code == 2 and "qcompress.json was edited" in result.stderr
    header["config_sha256"] = config_sha256(header["config"])  # a consistent header naming another model
    (out / "qcompress.json").write_text(json.dumps(header))
    result = run_cli("eval", out)
    assert result.exit_code == 2 and "was made for base model" in result.stderr
    assert run_cli("eval", tmp_path / "nowhere").exit_code == 2


def test_the_learning_rate_used_is_recorded_in_the_run(tiny_gpt2_dir, corpus_dir, tmp_path):
    from qcompress.methods import get_method

    fit(tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", steps=2, eval_every=0), tmp_path / "run")
    header = json.loads((tmp_path / "run" / "qcompress.json").read_text())
    assert header["config"]["lr"] == get_method("qpa-lora").default_lr
