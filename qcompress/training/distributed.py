"""Data-parallel fits across processes, started by ``torchrun`` or ``accelerate launch``.

Both launchers set ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and the rendezvous address); a fit
that finds ``WORLD_SIZE > 1`` joins the process group and trains data-parallel:

- every rank builds the same model, adapter and generator from the same config and seeds, reads
  the same global batch from the deterministic sampler and keeps its own slice of its rows;
- the model is wrapped in PyTorch's ``DistributedDataParallel``, which all-reduces (averages) the
  trained gradients during the backward pass, so every rank takes the same optimiser step; the
  mean over equal slices of a batch of equal-length blocks is the mean over the whole batch, so the
  run follows a one-process run with the same global batch (float rounding apart);
- rank 0 alone writes the run directory, evaluates, prints progress; the others read the run
  only to ``--resume`` from its checkpoint.

Nothing here is specific to one node: FSDP or DeepSpeed (through ``accelerate``) are what to use
when the base model no longer fits on one device; qcompress hard-codes no device and keeps no
parameter on rank 0 only, so they can wrap the same model.
"""

from __future__ import annotations

import datetime
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from qcompress.errors import InputError


@dataclass(frozen=True)
class Processes:
    """This process's place among the fit's processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Processes:
        """Read the launcher's variables; a malformed value is a one-line error, not a traceback."""
        values = {}
        for key, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
            raw = os.environ.get(key, default)
            try:
                values[key] = int(raw)
            except ValueError:
                raise InputError(f"environment variable {key}={raw!r} is not an integer: start the fit with torchrun or accelerate launch") from None
        processes = cls(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
        if not 0 <= processes.rank < processes.world:
            raise InputError(f"RANK={processes.rank} is outside WORLD_SIZE={processes.world}: start the fit with torchrun or accelerate launch")
        return processes

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Whether this process writes the run, evaluates and reports."""
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """Each rank's own GPU (``cuda:LOCAL_RANK``) when the fit runs on CUDA; the CPU stays the CPU."""
        if self.distributed and requested.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise InputError(
                    f"LOCAL_RANK {self.local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                    "launch at most one process per GPU (--nproc_per_node / --num_processes)"
                )
            return torch.device("cuda", self.local_rank)
        return requested

    def join(self, device: torch.device) -> None:
        """Join the process group: NCCL between GPUs, gloo between CPU processes."""
        if not self.distributed or dist.is_initialized():
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=self.rank, world_size=self.world, timeout=datetime.timedelta(minutes=30))

    def check_batch(self, batch_size: int) -> None:
        """A global batch splits into equal slices, one per rank (so their mean is the batch's)."""
        if batch_size % self.world:
            raise InputError(
                f"--batch-size {batch_size} is not divisible by the {self.world} processes: "
                f"use a multiple of {self.world} (it is the global batch, split across processes)"
            )

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global micro-batch."""
        rows = batch.shape[0] // self.world
        return batch[self.rank * rows : (self.rank + 1) * rows]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` under DistributedDataParallel (itself in one process).

        ``init_sync=False``: every rank already holds identical weights (same files, same seeds),
        so the initial broadcast of a whole base model is skipped; ``broadcast_buffers=False``: the
        buffers are constants (circuit gates, rotary tables), never trained.
        """
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [model_device(model).index] if model_device(model).type == "cuda" else None
        # torch 2.13 renamed broadcast_buffers (and deprecated the old name); earlier ones know only it
        renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        no_buffer_sync = {"forward_sync_buffers" if renamed else "broadcast_buffers": False}
        return DistributedDataParallel(model, device_ids=device_ids, init_sync=False, **no_buffer_sync)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of ``value`` over the ranks (the global batch's loss)."""
        if self.distributed:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world
        return value

    def barrier(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.barrier()

    def leave(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
