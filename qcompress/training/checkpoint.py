"""Checkpoints that let ``--resume`` continue a run exactly as if it had never stopped.

A checkpoint is a folder built beside the old one and swapped in, so an interruption at any
moment leaves the previous checkpoint complete.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from qcompress.errors import InputError
from qcompress.training.run_dir import load_tensors, save_tensors

CHECKPOINT = "checkpoint"


def save_checkpoint(
    run_dir: Path,
    step: int,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".checkpoint.", dir=run_dir))
    try:
        save_tensors(staging / "trainable.safetensors", trainable)
        torch.save(
            {
                "step": step,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": np.random.get_state(),
                    "python": random.getstate(),
                },
            },
            staging / "state.pt",
        )
        final = run_dir / CHECKPOINT
        retired = run_dir / ".checkpoint.old"
        shutil.rmtree(retired, ignore_errors=True)
        if final.exists():
            final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_checkpoint(run_dir: Path) -> tuple[int, dict[str, torch.Tensor], dict]:
    """(step, trainable state, optimizer/scheduler/rng state) of the last complete checkpoint."""
    folder = run_dir / CHECKPOINT
    if not (folder / "state.pt").is_file():
        raise InputError(f"{run_dir} has no checkpoint to resume from: start a new run without --resume")
    trainable = load_tensors(folder / "trainable.safetensors")
    try:
        state = torch.load(folder / "state.pt", weights_only=False)
        step = int(state["step"])
    except Exception as error:  # any unpickling failure means a corrupt file
        raise InputError(f"{folder / 'state.pt'} is corrupt ({type(error).__name__}): start a new run") from None
    return step, trainable, state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
