"""Checkpoints that let ``--resume`` continue a run exactly as if it had never stopped.

RUN/checkpoint/ holds only safetensors and JSON, never pickle (unpickling a crafted file runs
its code), and the same run writes it byte for byte the same:

- ``trainable.safetensors``  the trained tensors
- ``state.safetensors``      every tensor of the optimizer and scheduler states and the RNG states
  (torch CPU, each CUDA device's once CUDA is in use, numpy's MT19937 keys)
- ``state.json``             step, the run's ``config_sha256``, the rest of those states with
  tensors referenced by name (see :mod:`qcompress.training.state_tree`), Python's ``random``
  state, the metrics recorded up to the step, the sha256 of both safetensors files, and a
  ``sha256`` of the document itself, so that a changed digit anywhere (a step, a learning rate)
  is caught and not silently resumed from.

The metrics live here, not only in ``RUN/metrics.jsonl``, so that a resumed run continues its
curves from checked data: ``metrics.jsonl`` is a report for people and is never read back.

A checkpoint is built in a staging directory beside the old one and swapped in, so an
interruption at any moment leaves the previous checkpoint complete.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qcompress.atomic import replace_directory, staging_directory, write_text_atomic
from qcompress.errors import InputError
from qcompress.integrity import sha256_file
from qcompress.training.run_dir import load_tensors, save_tensors
from qcompress.training.state_tree import MalformedState, decode, encode

CHECKPOINT = "checkpoint"
TRAINABLE = "trainable.safetensors"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
LEGACY_PICKLE = "state.pt"
FORMAT_VERSION = 1
FIELDS = {"format_version": int, "step": int, "config_sha256": str, "files": dict, "state": dict}

Scheduler = torch.optim.lr_scheduler.LRScheduler


def save_checkpoint(
    run_dir: Path,
    step: int,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Scheduler | None,
    config_sha256: str,
    metrics: list[dict[str, Any]] | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write RUN/checkpoint for ``step`` (with the ``metrics`` rows up to it), replacing the previous
    one only once this one is complete. An enabled gradient scaler (``--precision fp16``) is saved
    too; an fp32/bf16 checkpoint has no entry for it, byte for byte as before scalers existed."""
    target = run_dir / CHECKPOINT
    staging = staging_directory(target)
    try:
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": _rng_state(),
            "metrics": metrics or [],
        }
        if scaler is not None and scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        structure, tensors = encode(state)
        save_tensors(staging / TRAINABLE, trainable)
        save_tensors(staging / STATE_TENSORS, tensors)
        document = {
            "format_version": FORMAT_VERSION,
            "step": step,
            "config_sha256": config_sha256,
            "files": {name: sha256_file(staging / name) for name in (TRAINABLE, STATE_TENSORS)},
            "state": structure,
        }
        document["sha256"] = _document_sha256(document)
        write_text_atomic(staging / STATE_JSON, json.dumps(document, indent=2, allow_nan=False) + "\n")
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint, loaded onto the CPU."""

    folder: Path
    step: int
    trainable: dict[str, torch.Tensor]
    state: dict[str, Any]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The metrics rows recorded up to :attr:`step`."""
        return self.state["metrics"]

    def restore(self, optimizer: torch.optim.Optimizer, scheduler: Scheduler | None, scaler: torch.amp.GradScaler | None = None) -> None:
        """Put the optimizer, scheduler, gradient scaler and every RNG back as they were when the
        checkpoint was written (the optimizer moves its state to its parameters' device)."""
        try:
            optimizer.load_state_dict(self.state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(self.state["scheduler"])
            if scaler is not None and scaler.is_enabled():
                scaler.load_state_dict(self.state["scaler"])
            _set_rng_state(self.state["rng"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise InputError(
                f"{self.folder / STATE_JSON} does not fit this run's optimizer, scheduler or RNG ({reason}): {_restart(self.folder)}"
            ) from None


def load_checkpoint(run_dir: Path, config_sha256: str) -> Checkpoint | None:
    """The run's checkpoint, checked file by file, or None when the run has none yet."""
    folder = run_dir / CHECKPOINT
    if (folder / LEGACY_PICKLE).exists():
        raise InputError(
            f"{folder / LEGACY_PICKLE} is a pickle (the old checkpoint format), which qcompress does not load "
            f"because unpickling can run code: remove {folder} and --resume to restart the run from step 0 "
            "(its trained state still evaluates and exports)"
        )
    if not folder.exists():
        return None
    document = _read_document(folder)
    if document["config_sha256"] != config_sha256:
        raise InputError(
            f"{folder} belongs to another run (its config_sha256 is not this run's): remove it, or resume the run it came from"
        )
    for name, recorded in document["files"].items():
        _check_sha256(folder, name, recorded)
    trainable = load_tensors(folder / TRAINABLE, fix=_restart(folder))
    tensors = load_tensors(folder / STATE_TENSORS, fix=_restart(folder))
    try:
        state = decode(document["state"], tensors)
    except MalformedState as error:
        raise _corrupt(folder, STATE_JSON, str(error)) from None
    return Checkpoint(folder, document["step"], trainable, state)


def _rng_state() -> dict[str, Any]:
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        # the uint32 keys as int64, which holds them exactly in every torch and safetensors version
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        "python": random.getstate(),
    }


def _set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    for device, state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
        torch.cuda.set_rng_state(state, device)
    kind, keys, *rest = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(rng["python"])


def _document_sha256(document: dict[str, Any]) -> str:
    """sha256 of ``document`` without its own ``sha256`` field, over a canonical JSON spelling."""
    body = {key: value for key, value in document.items() if key != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _read_document(folder: Path) -> dict[str, Any]:
    """state.json, parsed and checked against its own sha256 and the fields it must have."""
    path = folder / STATE_JSON
    if not path.is_file():
        raise _corrupt(folder, STATE_JSON, "missing")
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, MalformedState) as error:
        raise _corrupt(folder, STATE_JSON, f"not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("sha256") != _document_sha256(document):
        raise _corrupt(folder, STATE_JSON, "its content does not match its sha256")
    for key, kind in FIELDS.items():
        if not isinstance(document.get(key), kind) or isinstance(document.get(key), bool):
            raise _corrupt(folder, STATE_JSON, f"no valid {key!r}")
    if document["format_version"] != FORMAT_VERSION:
        raise _corrupt(folder, STATE_JSON, f"checkpoint format {document['format_version']}, this qcompress reads {FORMAT_VERSION}")
    if sorted(document["files"]) != sorted((TRAINABLE, STATE_TENSORS)) or document["step"] < 0:
        raise _corrupt(folder, STATE_JSON, "wrong file list or step")
    return document


def _reject_constant(name: str) -> None:
    raise MalformedState(f"{name} is not strict JSON")


def _check_sha256(folder: Path, name: str, recorded: Any) -> None:
    path = folder / name
    try:
        actual = sha256_file(path)
    except OSError:
        raise _corrupt(folder, name, "missing or unreadable") from None
    if actual != recorded:
        raise _corrupt(folder, name, f"its sha256 differs from the one in {STATE_JSON}")


def _restart(folder: Path) -> str:
    return f"remove {folder} and --resume to restart from step 0"


def _corrupt(folder: Path, name: str, reason: str) -> InputError:
    return InputError(f"{folder / name} is corrupt ({reason}): {_restart(folder)}")
