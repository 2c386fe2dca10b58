"""Checkpoints: safetensors + JSON only, exact round trips, byte-identical runs, and one-line refusals
of pickles, foreign checkpoints and damaged files."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import get_scheduler

from fit_helpers import tiny_config
import qcompress.training.fit as fit_module
from qcompress.errors import InputError, Interrupted
from qcompress.training.checkpoint import load_checkpoint, save_checkpoint
from qcompress.training.fit import fit
from qcompress.training.run_dir import load_tensors, save_tensors
from qcompress.training.state_tree import MalformedState, decode, encode

FILES = ("trainable.safetensors", "state.safetensors", "state.json")


def assert_same(actual, expected) -> None:
    """Equal, with the same types all the way down (a tuple is not a list, 1 is not 1.0), NaN == NaN."""
    assert type(actual) is type(expected), (actual, expected)
    if isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape and torch.equal(actual, expected)
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_same(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual)
    else:
        assert actual == expected


def test_encoder_round_trips_nested_state_exactly(tmp_path):
    state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, 1: {}},
        "groups": [{"betas": (0.9, 0.999), "params": [0, 1], "lr": 1e-3, "fused": None, "amsgrad": False}],
        "floats": [math.inf, -math.inf, math.nan, -0.0, 1e-310, 1.0, 1],
        "$looks_like_a_tag": "plain", "mixed": {"a": 1, 2: "b"}, "nested": ((), ([],), {}),
        "flags": torch.tensor([True, False]), "bytes": torch.arange(5, dtype=torch.uint8), "text": "ünï\n",
    }
    data, tensors = encode(state)
    save_tensors(tmp_path / "t.safetensors", tensors)  # through the real file format, 0-dim tensors included
    text = json.dumps(data, allow_nan=False)
    assert_same(decode(json.loads(text), load_tensors(tmp_path / "t.safetensors")), state)
    assert sorted(tensors) == ["bytes", "flags", "state/0/exp_avg", "state/0/step"]


@pytest.mark.parametrize(
    "data, tensors",
    [
        ({"$nope": 1}, {}),
        ({"$tensor": "missing"}, {"present": torch.zeros(1)}),
        ({"$tensor": "x", "extra": 1}, {"x": torch.zeros(1)}),
        ({"$float": "1.5"}, {}),
        ({"$float": ["inf"]}, {}),
        ({"$tuple": 3}, {}),
        ({"$dict": [[True, 1]]}, {}),
        ({"$dict": [[1]]}, {}),
        ([math.nan], {}),
    ],
)
def test_decoder_refuses_what_the_encoder_never_writes(data, tensors):
    with pytest.raises(MalformedState):
        decode(data, tensors)


def test_encoder_refuses_values_it_cannot_round_trip():
    for value in ({"x": object()}, {(1, 2): 0}, {True: 0}):
        with pytest.raises(TypeError):
            encode(value)


def test_restore_puts_optimizer_scheduler_and_rngs_back(tmp_path):
    def training():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        return model, optimizer, get_scheduler("linear", optimizer, num_warmup_steps=1, num_training_steps=10)

    def step(model, optimizer, scheduler):
        model(torch.randn(4, 3)).pow(2).sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()

    def draws():
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()

    model, optimizer, scheduler = training()
    for _ in range(3):
        step(model, optimizer, scheduler)
    assert load_checkpoint(tmp_path, "abc") is None  # no checkpoint yet
    save_checkpoint(tmp_path, 3, model.state_dict(), optimizer, scheduler, "abc")
    expected = draws(), optimizer.state_dict(), scheduler.state_dict()

    fresh, fresh_optimizer, fresh_scheduler = training()
    checkpoint = load_checkpoint(tmp_path, "abc")
    assert checkpoint.step == 3
    fresh.load_state_dict(checkpoint.trainable)
    checkpoint.restore(fresh_optimizer, fresh_scheduler)
    assert_same((draws(), fresh_optimizer.state_dict(), fresh_scheduler.state_dict()), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no staging or old copy left
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == sorted(FILES)


@pytest.fixture(scope="module")
def fitted(tiny_gpt2_dir, corpus_dir, tmp_path_factory) -> Path:
    """A finished 3-step run; tests that damage it work on a copy."""
    run = tmp_path_factory.mktemp("fitted") / "run"
    fit(tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", steps=3, eval_every=0), run)
    return run


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def config_sha256(run: Path) -> str:
    return json.loads((run / "qcompress.json").read_text())["config_sha256"]


def test_identical_fits_write_byte_identical_checkpoints(fitted, tiny_gpt2_dir, corpus_dir, tmp_path):
    # as if in another process: Python's and NumPy's global generators start from OS entropy there
    random.seed(os.urandom(16))
    np.random.seed(int.from_bytes(os.urandom(4), "little"))
    fit(tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", steps=3, eval_every=0), tmp_path / "again")
    assert sorted(p.name for p in (fitted / "checkpoint").iterdir()) == sorted(FILES)
    for name in FILES:
        assert (tmp_path / "again" / "checkpoint" / name).read_bytes() == (fitted / "checkpoint" / name).read_bytes(), name
    checkpoint = load_checkpoint(fitted, config_sha256(fitted))
    assert checkpoint.step == 3
    assert_same(checkpoint.trainable, load_tensors(fitted / "generator.safetensors"))


def test_pickle_checkpoint_is_refused_without_being_unpickled(run_cli, fitted, tmp_path):
    run = copy_of(fitted, tmp_path)
    marker = tmp_path / "unpickled"
    for name in ("state.json", "state.safetensors"):  # the old layout: trainable.safetensors + state.pt
        (run / "checkpoint" / name).unlink()
    # protocol-0 pickle of open(marker, "w"): loading it would create the marker file
    (run / "checkpoint" / "state.pt").write_bytes(b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR.")
    result = run_cli("fit", "--resume", "--out", run)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"{run / 'checkpoint' / 'state.pt'} is a pickle" in result.stderr and "unpickling can run code" in result.stderr
    assert not marker.exists()


def test_checkpoint_of_another_run_is_refused(fitted, tiny_gpt2_dir, corpus_dir, tmp_path):
    fit(tiny_config(tiny_gpt2_dir, corpus_dir, method="qpa-lora", steps=3, eval_every=0, seed=1), tmp_path / "other")
    run = copy_of(fitted, tmp_path)
    shutil.rmtree(run / "checkpoint")
    shutil.copytree(tmp_path / "other" / "checkpoint", run / "checkpoint")
    with pytest.raises(InputError, match="belongs to another run .*: remove it, or resume the run it came from"):
        load_checkpoint(run, config_sha256(run))


def truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def edit_step(data: bytes) -> bytes:
    """Valid JSON with one changed digit: only the document's own sha256 can catch it."""
    assert b'"step": 3' in data
    return data.replace(b'"step": 3', b'"step": 2')


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("damage", [truncate, flip_middle_byte, None], ids=["truncated", "flipped", "missing"])
def test_each_damaged_checkpoint_file_is_refused_naming_it(fitted, tmp_path, name, damage):
    run = copy_of(fitted, tmp_path)
    path = run / "checkpoint" / name
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(InputError) as refused:
        load_checkpoint(run, config_sha256(run))
    message = str(refused.value)
    assert message.startswith(f"{path} is corrupt (") and "\n" not in message
    assert message.endswith(f"remove {run / 'checkpoint'} and --resume to restart from step 0")


def test_edited_or_crafted_state_json_is_refused(fitted, tmp_path):
    run = copy_of(fitted, tmp_path)
    path = run / "checkpoint" / "state.json"
    original = path.read_bytes()
    path.write_bytes(edit_step(original))
    with pytest.raises(InputError, match="state.json is corrupt .*does not match its sha256"):
        load_checkpoint(run, config_sha256(run))
    # a crafted document with a correct self-hash still goes through the strict decoder
    document = json.loads(original)
    document["state"]["rng"] = {"$nope": 1}
    body = {key: value for key, value in document.items() if key != "sha256"}
    document["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"state.json is corrupt \(unknown tag '\$nope'"):
        load_checkpoint(run, config_sha256(run))


def _interrupt_after_checkpoint(monkeypatch, when) -> None:
    """Send this process a Ctrl-C right after the fit's checkpoint write returns, on the call ``when(step)`` picks."""
    write = fit_module._checkpoint

    def write_then_interrupt(run_dir, step, *args, **kwargs):
        write(run_dir, step, *args, **kwargs)
        if when(step):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(fit_module, "_checkpoint", write_then_interrupt)


def test_ctrl_c_as_a_checkpoint_lands_keeps_that_checkpoint(tiny_llama_dir, corpus_dir, tmp_path, monkeypatch):
    """A Ctrl-C right after the checkpoint is on disk, before the fit has recorded it, must not make the failure
    path drop the run as if nothing were kept (CI once hit this window from outside, by watching for the file)."""
    _interrupt_after_checkpoint(monkeypatch, lambda step: step == 2)
    run = tmp_path / "run"
    config = tiny_config(tiny_llama_dir, corpus_dir, steps=4, eval_every=0, checkpoint_every=2)
    with pytest.raises(Interrupted, match=r"interrupted at step 2; the checkpoint of step 2 in .* is intact: --resume continues it$"):
        fit(config, run)
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 2


def test_ctrl_c_in_the_final_checkpoint_leaves_a_run_that_resume_finishes(tiny_llama_dir, corpus_dir, tmp_path, monkeypatch):
    """The summary marks a run finished, so it is written after the final checkpoint: interrupted there, the run
    has no summary yet and --resume finishes it (the summary first would have made resume say there is nothing to do)."""
    final_saves = []
    _interrupt_after_checkpoint(monkeypatch, lambda step: step == 4 and len(final_saves.append(step) or final_saves) == 2)
    run = tmp_path / "run"
    config = tiny_config(tiny_llama_dir, corpus_dir, steps=4, eval_every=0, checkpoint_every=2)
    with pytest.raises(Interrupted, match=r"the checkpoint of step 4 in .* is intact: --resume continues it$"):
        fit(config, run)
    assert not (run / "summary.json").exists()
    monkeypatch.undo()
    assert fit(None, run, resume=True).summary["steps"] == 4
    assert (run / "summary.json").is_file()
