"""What qcompress never does to a user's files, and the checks between fit and export.

``--force`` replaces only what qcompress made, and only once the replacement is complete; a run's
config and base model are checked, not assumed; defaults adapt to a short context; a failed fit
claims only what it kept.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fit_helpers import tiny_cli_flags, tiny_config
from fs_helpers import error_line, leftovers, snapshot
from qcompress.errors import CheckFailed
from qcompress.training.fit import fit


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_gpt2_dir, corpus_dir) -> Path:
    """A finished two-step LoRA run on tiny GPT-2."""
    out = tmp_path_factory.mktemp("safety") / "run"
    fit(tiny_config(tiny_gpt2_dir, corpus_dir, method="lora", steps=2, eval_every=0), out)
    return out


def _copy(run: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


def _dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


def _not_an_artifact(tmp_path: Path, tiny_run: Path, tiny_llama_dir: Path) -> dict[str, Path]:
    user = tmp_path / "user-folder"
    user.mkdir()
    (user / "notes.txt").write_text("my notes")
    web = tmp_path / "web-app"
    web.mkdir()
    (web / "manifest.json").write_text(json.dumps({"name": "my web app", "icons": []}))
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    return {"user folder": user, "foreign manifest": web, "plain file": plain, "a run": _copy(tiny_run, tmp_path),
            "the source": tiny_llama_dir, "around the source": tiny_llama_dir.parent}


def test_export_force_replaces_nothing_but_an_artifact(run_cli, tiny_run, tiny_llama_dir, tmp_path):
    for what, target in _not_an_artifact(tmp_path, tiny_run, tiny_llama_dir).items():
        before = snapshot(target)
        result = run_cli("export", tiny_llama_dir, "--out", target, "--force")
        assert result.exit_code == 2, what
        assert str(target.name) in error_line(result.stderr), what
        assert snapshot(target) == before, what
        unforced = run_cli("export", tiny_llama_dir, "--out", target)  # nor is --force suggested for it
        assert unforced.exit_code == 2 and "pass --force" not in error_line(unforced.stderr), what
    assert leftovers(tmp_path) == []


def test_export_of_a_run_onto_itself_is_refused(run_cli, tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path)
    before = snapshot(run)
    result = run_cli("export", run, "--out", run, "--force")
    assert result.exit_code == 2 and "overlaps the source" in error_line(result.stderr)
    assert snapshot(run) == before


def test_fit_force_replaces_nothing_but_a_run(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    user = tmp_path / "user-folder"
    user.mkdir()
    (user / "notes.txt").write_text("my notes")
    before_user = snapshot(user)
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    for target in (user, plain):
        before = snapshot(target)
        result = run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--out", target, "--force")
        assert result.exit_code == 2 and target.name in error_line(result.stderr)
        assert snapshot(target) == before
    unforced = run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--out", user)  # --force is not suggested either
    assert unforced.exit_code == 2 and "not a qcompress run directory" in error_line(unforced.stderr)
    assert "--force" not in error_line(unforced.stderr) and snapshot(user) == before_user
    assert leftovers(tmp_path) == []


def test_fit_force_that_fails_keeps_the_old_run(run_cli, tiny_run, tiny_gpt2_dir, corpus_dir, tmp_path):
    run = _copy(tiny_run, tmp_path)
    before = snapshot(run)
    result = run_cli("fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--method", "qpa-lora", "--backend", "cirq",
                     "--out", run, "--force")
    assert result.exit_code == 4, result.stderr
    error_line(result.stderr)
    assert snapshot(run) == before
    with pytest.raises(CheckFailed, match=f"{run} still holds the previous one"):
        fit(tiny_config(tiny_gpt2_dir, corpus_dir, method="lora", lr=1e30, warmup_steps=0, max_grad_norm=0), run, force=True)
    assert snapshot(run) == before
    assert leftovers(tmp_path) == []
    fit(tiny_config(tiny_gpt2_dir, corpus_dir, method="lora", steps=3, eval_every=0), run, force=True)
    assert json.loads((run / "summary.json").read_text())["steps"] == 3


def test_leftovers_of_killed_processes_are_cleared_and_live_ones_kept(tiny_run, tiny_gpt2_dir, corpus_dir, tmp_path):
    run = _copy(tiny_run, tmp_path)
    dead, alive = _dead_pid(), os.getppid()
    stale = [tmp_path / f".run.{dead}.qcompress-staging-abc", run / f".metrics.jsonl.{dead}.qcompress-tmp-xyz",
             run / f".checkpoint.{dead}.qcompress-staging-k1"]
    live = tmp_path / f".run.{alive}.qcompress-staging-def"
    for folder in (*stale, live):
        folder.mkdir()
        (folder / "partial").write_text("half")
    fit(None, run, resume=True)
    assert not any(path.exists() for path in stale)
    assert live.is_dir()


def test_a_set_aside_artifact_is_put_back_after_a_killed_swap(tmp_path):
    from qcompress.atomic import remove_stale_siblings

    target = tmp_path / "artifact"
    aside = tmp_path / f".artifact.{_dead_pid()}.qcompress-old-abc"
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    assert remove_stale_siblings(target) == [aside]
    assert (target / "manifest.json").read_text() == "{}"


def _edit_header(run: Path, change) -> None:
    header = json.loads((run / "qcompress.json").read_text())
    change(header)
    (run / "qcompress.json").write_text(json.dumps(header))


def test_an_edited_config_is_refused_everywhere(run_cli, tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path)
    _edit_header(run, lambda header: header["config"]["adapter"].update(alpha=99.0))
    before = snapshot(run)
    for args in (["eval", run], ["export", run, "--out", tmp_path / "artifact"], ["fit", "--resume", "--out", run]):
        result = run_cli(*args)
        assert result.exit_code == 2, args
        assert "qcompress.json was edited" in error_line(result.stderr)
        assert snapshot(run) == before
    assert not (tmp_path / "artifact").exists()


def test_same_config_other_weights_is_refused_unless_asked(run_cli, tiny_llama_dir, corpus_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    model_dir = Path(shutil.copytree(tiny_llama_dir, tmp_path / "model"))
    run = tmp_path / "run"
    fit(tiny_config(model_dir, corpus_dir, method="lora", steps=2, eval_every=0), run)
    other = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.01)
    other.save_pretrained(model_dir)
    flags = ["--seq-len", "64", "--max-tokens", "128"]
    refused = run_cli("eval", run, *flags)
    assert refused.exit_code == 2 and "same config and other weights" in error_line(refused.stderr)
    assert "--ignore-model-mismatch" in refused.stderr
    accepted = run_cli("eval", run, *flags, "--ignore-model-mismatch")
    assert accepted.exit_code == 0, accepted.stderr
    assert "note: " in accepted.stderr and "other weights" in accepted.stderr


def test_default_windows_adapt_to_a_short_context(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    base = ["--model", tiny_gpt2_dir, "--data", corpus_dir / "train", "--eval-data", corpus_dir / "heldout.txt",
            "--steps", "2", "--eval-tokens", "256", "--method", "lora", "--threads", "1"]
    result = run_cli("fit", *base, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("note: --eval-seq-len defaults to 256 but the model's context is 128 tokens") == 1
    config = json.loads((tmp_path / "run" / "qcompress.json").read_text())["config"]
    assert (config["seq_len"], config["eval_seq_len"], config["eval_stride"]) == (128, 128, 64)
    explicit = run_cli("fit", *base, "--eval-seq-len", "200", "--out", tmp_path / "other")
    assert explicit.exit_code == 2
    assert "--eval-seq-len 200 is longer than the model's context (128 tokens)" in error_line(explicit.stderr)


def test_a_diverged_fit_claims_only_the_checkpoint_it_has(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    flags = [*tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--method", "lora"]
    result = run_cli("fit", *flags, "--lr", "1e30", "--out", tmp_path / "run")
    assert result.exit_code == 3
    message = error_line(result.stderr)
    assert "loss became" in message and "checkpoint" not in message and "nothing was kept" in message
    assert not (tmp_path / "run").exists()
    assert run_cli("fit", *flags, "--lr", "1e-3", "--out", tmp_path / "run").exit_code == 0  # the advice works

    config = tmp_path / "fit.yaml"
    config.write_text("checkpoint_every: 1\nwarmup_steps: 0\nmax_grad_norm: 0\n")
    result = run_cli("fit", *flags, "--config", config, "--lr", "1e30", "--out", tmp_path / "kept")
    assert result.exit_code == 3
    message = error_line(result.stderr)
    assert "the checkpoint of step 1" in message and "--force" in message
    assert (tmp_path / "kept" / "checkpoint").is_dir()


def test_no_arguments_is_one_line_with_the_commands(run_cli):
    result = run_cli()
    assert result.exit_code == 2
    assert "no command given: choose one of eval, export, fit" in error_line(result.stderr)


@pytest.mark.parametrize("field, value", [("base_model", "smollm2"), ("config", ["steps", 2]), ("config_sha256", 7)])
def test_a_header_with_a_field_of_the_wrong_type_is_one_line(run_cli, tiny_run, tmp_path, field, value):
    run = _copy(tiny_run, tmp_path)
    _edit_header(run, lambda header: header.update({field: value}))
    result = run_cli("eval", run)
    assert result.exit_code == 2 and "qcompress.json is corrupt" in error_line(result.stderr)


def test_a_filesystem_refusal_is_one_line(run_cli, tiny_gpt2_dir, corpus_dir, tmp_path):
    """An --out below a plain file cannot be created: the OS's refusal, not a traceback."""
    blocker = tmp_path / "plain-file"
    blocker.write_text("in the way")
    for args in (["fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--out", blocker / "run"],
                 ["export", tiny_gpt2_dir, "--out", blocker / "artifact", "--format", "safetensors"]):
        result = run_cli(*args)
        assert result.exit_code == 2 and "cannot use" in error_line(result.stderr), result.stderr
        assert blocker.read_text() == "in the way"


def test_resuming_a_complete_run_changes_nothing(run_cli, tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path)
    before = snapshot(run)
    result = run_cli("fit", "--resume", "--out", run, "--json")
    assert result.exit_code == 0, result.stderr
    assert "nothing to resume" in result.stderr and json.loads(result.stdout)["steps"] == 2
    assert snapshot(run) == before


def test_a_locked_run_is_refused_while_another_process_writes_it(run_cli, tiny_run, tmp_path):
    import os

    from qcompress.training.workspace import lock_directory

    run = _copy(tiny_run, tmp_path)
    before = snapshot(run)
    held = lock_directory(run)
    try:
        for args in (["fit", "--resume", "--out", run], ["fit", "--model", "x", "--out", run, "--force"]):
            result = run_cli(*args)
            assert result.exit_code == 2 and "being written by another qcompress process" in error_line(result.stderr)
    finally:
        os.close(held)
    assert snapshot(run) == before


def test_an_artifact_that_appears_during_an_export_is_kept(tiny_gpt2_dir, tmp_path):
    from qcompress.errors import InputError
    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source

    out = tmp_path / "artifact"

    def another_export_finishes_first(message: str) -> None:
        out.mkdir(exist_ok=True)
        (out / "manifest.json").write_text("the other one")

    loaded = load_source(str(tiny_gpt2_dir))
    with pytest.raises(InputError, match="created by another process while this export ran"):
        export_artifact(loaded.model, loaded.tokenizer, out, source={}, formats=["safetensors"],
                        progress=another_export_finishes_first)
    assert snapshot(out) == {"manifest.json": b"the other one"}
    assert leftovers(tmp_path) == []


def test_links_and_outputs_inside_inputs_are_refused(run_cli, tiny_run, tiny_gpt2_dir, corpus_dir, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(_copy(tiny_run, tmp_path))
    corpus = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    flags = tiny_cli_flags(tiny_gpt2_dir, corpus)
    cases = {
        "symbolic link": ["fit", *flags, "--out", link, "--force"],
        "symbolic link ": ["export", tiny_gpt2_dir, "--out", link, "--force"],
        "overlaps --data": ["fit", *flags, "--out", corpus / "train" / "run"],
        "empty string": ["fit", *flags, "--data", "", "--out", tmp_path / "new-run"],
    }
    before = snapshot(tmp_path)
    for expected, args in cases.items():
        result = run_cli(*args)
        assert result.exit_code == 2 and expected.strip() in error_line(result.stderr), (expected, result.stderr)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args, message", [
    (["inspect", "-m", "100000000", "--n-mlp", "1"], "more than the 24 an exact simulation holds"),
    (["inspect", "-m", "100", "--depth", "100000000"], "depth"),
    (["inspect", "-m", "100", "--seed", "99999999999999999999999"], "--seed"),
    (["generate", "x", "--prompt", "hi", "--seed", "-1"], "--seed"),
    (["generate", "x", "--prompt", "hi", "--threads", "100000"], "--threads"),
])
def test_values_that_would_crash_or_run_away_are_refused(run_cli, args, message):
    result = run_cli(*args)
    assert result.exit_code == 2 and message in error_line(result.stderr)


def test_sampling_values_that_are_not_numbers_are_refused(run_cli, onnx_artifacts):
    result = run_cli("generate", onnx_artifacts["gpt2"], "--prompt", "the", "--sample", "--temperature", "nan")
    assert result.exit_code == 2 and "finite" in error_line(result.stderr)


def test_a_binary_config_file_is_one_line(run_cli, tmp_path):
    config = tmp_path / "fit.yaml"
    config.write_bytes(b"\x00\x01\xff\xfe")
    result = run_cli("fit", "--config", config, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "not UTF-8" in error_line(result.stderr)


@pytest.mark.parametrize("change, message", [
    (lambda header: header.update(format_version=999), "run format 999"),
    (lambda header: header.pop("counts"), "is corrupt"),
])
def test_a_header_of_another_format_or_shape_is_refused(run_cli, tiny_run, tmp_path, change, message):
    run = _copy(tiny_run, tmp_path)
    _edit_header(run, change)
    for command in (["eval", run], ["verify", run], ["export", run, "--out", tmp_path / "artifact"]):
        result = run_cli(*command)
        assert result.exit_code == 2 and message in error_line(result.stderr)
