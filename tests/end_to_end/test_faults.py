"""The CLI under faults, driven as a user (or a CI job) would: signals during fit and export, then
every file of a run and of an artifact corrupted in turn.

For each fault: a non-zero exit, one ``error:`` line naming what is wrong and how to go on, no
leftovers, and every file that existed before byte-identical afterwards.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fit_helpers import tiny_cli_flags, tiny_config
from fs_helpers import error_line, leftovers, snapshot
from qcompress.training.fit import fit

TRAIN_STEPS = 400


def _fit_yaml(folder: Path, model_dir: Path, corpus_dir: Path) -> Path:
    """A tiny qpa-lora fit long enough to be interrupted, with a checkpoint every 10 steps."""
    config = {
        "model": str(model_dir), "data": str(corpus_dir / "train"), "eval_data": str(corpus_dir / "heldout.txt"),
        "method": "qpa-lora", "adapter": {"rank": 4}, "qpa": {"n_mlp": 64, "depth": 2},
        "steps": TRAIN_STEPS, "checkpoint_every": 10, "eval_every": 0, "seq_len": 32, "eval_tokens": 256,
        "eval_seq_len": 64, "eval_stride": 32, "threads": 1,
    }
    path = folder / "fit.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


class CliProcess:
    """``qcompress ARGS`` in a child process, stderr to a file (a full pipe could stall the child)."""

    def __init__(self, folder: Path, *args: object) -> None:
        self.log = folder / f"stderr-{time.monotonic_ns()}.txt"
        with open(self.log, "w") as stderr:
            self.process = subprocess.Popen([sys.executable, "-m", "qcompress.cli", *map(str, args)],
                                            stdout=subprocess.DEVNULL, stderr=stderr)

    def when(self, ready: Callable[[], bool], timeout: float = 180.0) -> CliProcess:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"finished before the fault: {self.stderr}"
            assert time.monotonic() < deadline, f"timed out waiting: {self.stderr}"
            time.sleep(0.05)
        return self

    def signal(self, number: int) -> int:
        self.process.send_signal(number)
        return self.process.wait(timeout=120)

    def wait(self) -> int:
        return self.process.wait(timeout=600)

    @property
    def stderr(self) -> str:
        return self.log.read_text()


def _staged(folder: Path, name: str, inside: str) -> Callable[[], bool]:
    """Whether a staging directory for ``folder/name`` holds ``inside`` yet."""
    return lambda: any(folder.glob(f".{name}.*.qcompress-staging-*/{inside}"))


def _no_foreign_warnings(stderr: str) -> None:
    assert "Warning" not in stderr and "warn(" not in stderr, stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_llama_dir, corpus_dir) -> Path:
    out = tmp_path_factory.mktemp("faults") / "run"
    fit(tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora", steps=4, eval_every=0, checkpoint_every=2), out)
    return out


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, finished_run) -> Path:
    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source

    out = tmp_path_factory.mktemp("faults-artifact") / "artifact"
    loaded = load_source(str(finished_run))
    export_artifact(loaded.model, loaded.tokenizer, out, source=loaded.description)
    return out


def test_ctrl_c_during_fit_keeps_the_last_checkpoint_and_resume_finishes(run_cli, tiny_llama_dir, corpus_dir, tmp_path):
    run = tmp_path / "run"
    child = CliProcess(tmp_path, "fit", "--config", _fit_yaml(tmp_path, tiny_llama_dir, corpus_dir), "--out", run)
    assert child.when(lambda: (run / "checkpoint" / "state.json").is_file()).signal(signal.SIGINT) == 130
    message = error_line(child.stderr)
    found = re.search(r"interrupted at step (\d+); the checkpoint of step (\d+) in \S+ is intact: --resume continues it$", message)
    assert found, message
    assert int(found[2]) <= int(found[1]) and int(found[2]) % 10 == 0
    _no_foreign_warnings(child.stderr)
    assert leftovers(tmp_path) == []
    resumed = run_cli("fit", "--resume", "--out", run)
    assert resumed.exit_code == 0, resumed.stderr
    rows = [row for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in row]
    assert [row["step"] for row in rows] == list(range(1, TRAIN_STEPS + 1))
    assert all("seconds" in row for row in rows)  # the steps before the interruption keep their times


def test_sigterm_during_a_forced_fit_keeps_the_old_run(finished_run, tiny_llama_dir, corpus_dir, tmp_path):
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    before = snapshot(run)
    child = CliProcess(tmp_path, "fit", "--config", _fit_yaml(tmp_path, tiny_llama_dir, corpus_dir), "--out", run, "--force")
    assert child.when(_staged(tmp_path, "run", "checkpoint/state.json")).signal(signal.SIGTERM) == 130
    assert error_line(child.stderr).endswith(f"the new run was discarded and {run} still holds the previous one: "
                                             "run the same command again to start over")
    assert snapshot(run) == before
    assert leftovers(tmp_path) == []


def test_kill_9_during_fit_then_resume_finishes_and_clears_leftovers(run_cli, tiny_llama_dir, corpus_dir, tmp_path):
    run = tmp_path / "run"
    child = CliProcess(tmp_path, "fit", "--config", _fit_yaml(tmp_path, tiny_llama_dir, corpus_dir), "--out", run)
    assert child.when(lambda: (run / "checkpoint" / "state.json").is_file()).signal(signal.SIGKILL) == -signal.SIGKILL
    resumed = run_cli("fit", "--resume", "--out", run)
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == TRAIN_STEPS
    assert leftovers(tmp_path) == []


def test_ctrl_c_during_export_leaves_the_old_artifact(finished_run, artifact, tmp_path):
    out = Path(shutil.copytree(artifact, tmp_path / "artifact"))
    before = snapshot(out)
    child = CliProcess(tmp_path, "export", finished_run, "--out", out, "--force")
    code = child.when(_staged(tmp_path, "artifact", "model/config.json")).signal(signal.SIGINT)
    assert code == 130, child.stderr
    assert error_line(child.stderr).endswith(f"nothing was written and {out} is as it was")
    assert snapshot(out) == before
    assert leftovers(tmp_path) == []


def test_kill_9_during_export_then_the_next_export_clears_the_leftover(finished_run, artifact, tmp_path):
    out = Path(shutil.copytree(artifact, tmp_path / "artifact"))
    before = snapshot(out)
    child = CliProcess(tmp_path, "export", finished_run, "--out", out, "--force")
    assert child.when(_staged(tmp_path, "artifact", "model/config.json")).signal(signal.SIGKILL) == -signal.SIGKILL
    assert snapshot(out) == before and leftovers(tmp_path) != []
    again = CliProcess(tmp_path, "export", finished_run, "--out", out, "--force")
    assert again.wait() == 0, again.stderr
    _no_foreign_warnings(again.stderr)
    assert leftovers(tmp_path) == []
    after = snapshot(out)  # the same run gives the same files; only the manifest's command line differs
    assert json.loads(after.pop("manifest.json"))["files"] == json.loads(before.pop("manifest.json"))["files"]
    assert after == before


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = b"\xff" * len(data[middle : middle + 16])
    path.write_bytes(bytes(data))


CORRUPTIONS = {"truncated": _truncate, "garbled": _garble}


def _corrupted_copies(source: Path, tmp_path: Path, relative: str):
    """(copy, corrupted file) for each way of corrupting ``relative`` in a fresh copy of ``source``."""
    for how, corrupt in CORRUPTIONS.items():
        copy = Path(shutil.copytree(source, tmp_path / f"{how}-{relative.replace('/', '-')}" / source.name))
        corrupt(copy / relative)
        yield copy


def _refused(result, what: str, copy: Path, before: dict[str, bytes]) -> None:
    assert result.exit_code == 2, (what, result.stderr)
    message = error_line(result.stderr)
    assert Path(what).name in message and ":" in message.removeprefix("error: "), message
    assert snapshot(copy) == before, what


RUN_READERS = {
    "qcompress.json": ("eval", "export", "resume", "verify"),
    "generator.safetensors": ("eval", "export", "verify"),
    "checkpoint/trainable.safetensors": ("resume", "verify"),
    "checkpoint/state.safetensors": ("resume", "verify"),
    "checkpoint/state.json": ("resume", "verify"),
}
#: written for people to read; no command reads them back (a resumed run takes its metrics from the
#: checkpoint), so corrupting one stops nothing
RUN_REPORTS = ("metrics.jsonl", "summary.json", "curves.png", "circuit.txt")


def _run_command(command: str, run: Path, corpus_dir: Path, tmp_path: Path) -> list:
    window = ["--seq-len", "64", "--max-tokens", "128"]
    return {
        "eval": ["eval", run, *window],
        "export": ["export", run, "--out", tmp_path / "exported", "--format", "safetensors"],
        "resume": ["fit", "--resume", "--out", run],
        "verify": ["verify", run],
    }[command]


def test_every_file_of_a_run_is_accounted_for(finished_run):
    on_disk = {path for path in snapshot(finished_run)}
    assert on_disk == set(RUN_READERS) | set(RUN_REPORTS)


@pytest.mark.parametrize("relative", sorted(RUN_READERS))
def test_a_corrupt_run_file_is_refused_by_every_command_that_reads_it(run_cli, finished_run, corpus_dir, tmp_path, relative):
    for copy in _corrupted_copies(finished_run, tmp_path, relative):
        before = snapshot(copy)
        for command in RUN_READERS[relative]:
            result = run_cli(*_run_command(command, copy, corpus_dir, tmp_path))
            _refused(result, relative, copy, before)
        assert not (tmp_path / "exported").exists()


def test_corrupt_reports_do_not_stop_a_run_from_being_used(run_cli, finished_run, corpus_dir, tmp_path):
    copy = Path(shutil.copytree(finished_run, tmp_path / "run"))
    for relative in RUN_REPORTS:
        _garble(copy / relative)
    for command in ("eval", "verify", "resume"):
        result = run_cli(*_run_command(command, copy, corpus_dir, tmp_path))
        assert result.exit_code == 0, result.stderr
    assert [row["step"] for row in map(json.loads, (copy / "metrics.jsonl").read_text().splitlines())] == [0, 1, 2, 3, 4, 4]


def _artifact_readers(relative: str) -> tuple[str, ...]:
    """generate and eval load onnx/ (checked against the manifest); verify reads everything."""
    if relative == "manifest.json" or relative.startswith("onnx/"):
        return ("generate", "eval", "verify")
    return ("verify",)


def _artifact_command(command: str, artifact: Path, corpus_dir: Path) -> list:
    return {
        "generate": ["generate", artifact, "--prompt", "the letter", "--max-new-tokens", "2"],
        "eval": ["eval", artifact, "--data", corpus_dir / "train", "--eval-data", corpus_dir / "heldout.txt",
                 "--seq-len", "64", "--max-tokens", "128"],
        "verify": ["verify", artifact],
    }[command]


def test_a_corrupt_artifact_file_is_refused_by_every_command_that_reads_it(run_cli, artifact, corpus_dir, tmp_path):
    files = sorted(snapshot(artifact))
    assert {"manifest.json", "onnx/model.onnx", "model/model.safetensors"} <= set(files)
    for relative in files:
        for copy in _corrupted_copies(artifact, tmp_path, relative):
            before = snapshot(copy)
            for command in _artifact_readers(relative):
                _refused(run_cli(*_artifact_command(command, copy, corpus_dir)), relative, copy, before)


def test_an_intact_artifact_passes_every_reader(run_cli, artifact, corpus_dir):
    before = snapshot(artifact)
    for command in ("generate", "eval", "verify"):
        result = run_cli(*_artifact_command(command, artifact, corpus_dir))
        assert result.exit_code == 0, (command, result.stderr)
    assert snapshot(artifact) == before


@pytest.mark.parametrize("change, message", [
    (lambda manifest: manifest.update(files=[]), "is not listed in"),
    (lambda manifest: manifest["files"].append({"path": "../outside.txt", "sha256": "0" * 64, "size": 1}), "outside the artifact"),
    (lambda manifest: manifest["files"].append({"path": "/etc/hostname", "sha256": "0" * 64, "size": 1}), "outside the artifact"),
    (lambda manifest: manifest.update(format_version=999), "has format 999"),
])
def test_a_manifest_listing_too_little_or_outside_the_artifact_is_refused(run_cli, artifact, tmp_path, change, message):
    copy = Path(shutil.copytree(artifact, tmp_path / "artifact"))
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(copy)
    for command in (["verify", copy], ["generate", copy, "--prompt", "the", "--max-new-tokens", "2"]):
        result = run_cli(*command)
        assert result.exit_code == 2 and message in error_line(result.stderr), (command, result.stderr)
    assert snapshot(copy) == before


def test_a_gpt2_fit_and_eval_print_no_foreign_log_lines(tiny_gpt2_dir, corpus_dir, tmp_path):
    """transformers logs "`loss_type=None` was set in the config but it is unrecognized" on every
    fit of a GPT-2-style class: not the user's business, and hidden (its other messages are not)."""
    run = tmp_path / "run"
    fitted = CliProcess(tmp_path, "fit", *tiny_cli_flags(tiny_gpt2_dir, corpus_dir), "--method", "lora", "--out", run)
    assert fitted.wait() == 0, fitted.stderr
    evaluated = CliProcess(tmp_path, "eval", run)
    assert evaluated.wait() == 0, evaluated.stderr
    for stderr in (fitted.stderr, evaluated.stderr):
        _no_foreign_warnings(stderr)
        assert "[transformers]" not in stderr and "was set in the config" not in stderr, stderr


def test_resume_of_a_complete_run_that_lost_its_trained_state_rewrites_it(run_cli, finished_run, tmp_path):
    """The advice for a missing state file ("qcompress fit --resume --out RUN rebuilds it") must work."""
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    kept = (run / "generator.safetensors").read_bytes()
    (run / "generator.safetensors").unlink()
    verified = run_cli("verify", run)
    assert verified.exit_code == 2 and f"qcompress fit --resume --out {run} rebuilds it" in error_line(verified.stderr)
    resumed = run_cli("fit", "--resume", "--out", run)
    assert resumed.exit_code == 0, resumed.stderr
    assert (run / "generator.safetensors").read_bytes() == kept
    assert run_cli("verify", run).exit_code == 0


def test_a_resume_interrupted_while_loading_says_the_run_is_intact(finished_run):
    from qcompress.training.workspace import RunWorkspace

    workspace = RunWorkspace.open(finished_run, resume=True, force=False)
    try:
        message = workspace.interrupted_message()
    finally:
        workspace.close()
    assert message == f"interrupted before the first step; nothing was written and {finished_run} is as it was: --resume continues it"
