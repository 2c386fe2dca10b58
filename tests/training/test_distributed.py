"""Data-parallel fits: two CPU processes (gloo) follow a one-process run with the same global batch.

The processes are started as a user would, by ``torchrun`` and by ``accelerate launch``; the
reference is the same fit in one process. Equal slices of equal-length blocks make the mean of the
ranks' losses the loss of the whole batch, so the curves and the trained tensors agree to float
rounding (the all-reduce sums in another order, and Adam magnifies rounding in tiny gradients).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fit_helpers import tiny_cli_flags, tiny_config
from qcompress.errors import InputError
from qcompress.training.distributed import Processes
from qcompress.training.fit import fit
from qcompress.training.run_dir import load_tensors

STEPS = 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(launcher: str, args: list[str], tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``qcompress`` ARGS in two processes on the CPU through ``launcher`` (torchrun or accelerate)."""
    port = str(free_port())
    if launcher == "torchrun":
        prefix = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", port]
    else:
        prefix = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1", "--main_process_port", port]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([*prefix, "-m", "qcompress.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def assert_same_training(one: Path, two: Path) -> None:
    assert losses(two) == pytest.approx(losses(one), rel=1e-5)
    reference, parallel = load_tensors(one / "generator.safetensors"), load_tensors(two / "generator.safetensors")
    assert sorted(parallel) == sorted(reference)
    for name, tensor in reference.items():
        # Adam divides by the gradients' root mean square, so rounding-level gradient differences
        # become ~1e-5 weight differences after a few steps at lr 3e-3 (one step moves up to 3e-3)
        torch.testing.assert_close(parallel[name], tensor, rtol=1e-4, atol=1e-4, msg=name)


def test_two_processes_match_one_with_the_same_global_batch(run_cli, tiny_llama_dir, corpus_dir, tmp_path):
    flags = [*tiny_cli_flags(tiny_llama_dir, corpus_dir), "--method", "qpa-lora", "--batch-size", "4", "--device", "cpu"]
    assert run_cli("fit", *flags, "--out", tmp_path / "one").exit_code == 0
    one = tmp_path / "one"
    done = launch("torchrun", ["fit", *flags, "--out", str(tmp_path / "two")], tmp_path)
    assert_same_training(one, tmp_path / "two")
    assert done.stdout.count("held-out perplexity") == 1  # rank 0 alone reports
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2
    # resuming the complete run: every rank stops at once (none waits for a process group the others skip)
    again = launch("torchrun", ["fit", "--resume", "--out", str(tmp_path / "two")], tmp_path, timeout=180)
    assert again.stderr.count("nothing to resume") == 1


def test_resume_under_accelerate_launch_continues_a_checkpoint(tiny_llama_dir, corpus_dir, tmp_path):
    """A run stopped at step 2 by one process, resumed by two through ``accelerate launch``, ends
    where an uninterrupted one-process run does: every rank restored the same checkpoint."""
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora", steps=STEPS, eval_every=0, checkpoint_every=2, device="cpu")
    one = fit(config, tmp_path / "one").run_dir
    fit(config, tmp_path / "resumed", stop_after=2)
    launch("accelerate", ["fit", "--resume", "--out", str(tmp_path / "resumed")], tmp_path)
    assert_same_training(one, tmp_path / "resumed")


def test_a_global_batch_must_split_evenly(tiny_gpt2_dir, corpus_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InputError, match="--batch-size 3 is not divisible by the 2 processes"):
        fit(tiny_config(tiny_gpt2_dir, corpus_dir, batch_size=3), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("env, message", [({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
                                          ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is outside WORLD_SIZE=2")])
def test_malformed_launcher_variables_are_one_line(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InputError, match=message):
        Processes.from_environment()


def test_ranks_take_disjoint_slices_that_cover_the_batch():
    batch = torch.arange(12).reshape(6, 2)
    slices = [Processes(rank, 3, rank).shard(batch) for rank in range(3)]
    assert torch.equal(torch.cat(slices), batch)
