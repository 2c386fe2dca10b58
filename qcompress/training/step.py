"""One optimiser step, the same on every device: micro-batches, autocast, gradient averaging.

The step never waits for the device: the loss stays a tensor (the caller reads it once per step,
after everything is queued), every constant the forward pass uses lives on the model's device
(``tests/training/test_device_guard.py`` runs this step on PyTorch's ``meta`` device to prove it), and the
only transfer is the batch of token ids, pinned and copied asynchronously.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from qcompress.training.distributed import Processes
from qcompress.training.precision import Precision


@dataclass
class TrainStep:
    """Forward and backward over ``grad_accum`` micro-batches, then one clipped optimiser update."""

    model: torch.nn.Module  # possibly DistributedDataParallel-wrapped
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: Precision
    processes: Processes
    grad_accum: int
    max_grad_norm: float
    #: ``params``' initial values and the pull toward them per unit learning rate (``--decay-to-init``)
    anchors: list[torch.Tensor] | None = None
    decay_to_init: float = 0.0

    def backward(self, micro_batches: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """Accumulate the gradients of the step's micro-batches; returns the mean loss (a tensor).

        Under data parallelism each rank sees its slice of every micro-batch and gradients are
        averaged only on the last one (``no_sync`` before), as DDP intends.
        """
        loss_sum = None
        for micro in range(self.grad_accum):
            batch = micro_batches(micro)
            last = micro == self.grad_accum - 1
            sync = self.model.no_sync() if self.processes.distributed and not last else contextlib.nullcontext()
            with sync:
                with self.precision.autocast():
                    loss = self.model(input_ids=batch, labels=batch).loss / self.grad_accum
                self.precision.scaler.scale(loss).backward()
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        return self.processes.mean(loss_sum)

    def update(self) -> None:
        """Unscale, clip and apply the accumulated gradients, advance the schedule, clear."""
        scaler = self.precision.scaler
        if self.max_grad_norm > 0:
            scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        scaler.step(self.optimizer)
        scaler.update()
        if self.anchors is not None:
            self._pull_toward_init(self.optimizer.param_groups[0]["lr"] * self.decay_to_init)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def _pull_toward_init(self, weight: float) -> None:
        """p <- p + weight (p0 - p), decoupled from the gradient as AdamW's decay is, but toward the start.

        Why toward the start and not toward zero: every method starts at dW = 0 (LoRA's B, a generator's
        zero-init offset), so this pulls the update itself back to zero; decaying a generator's angles or
        MLP toward zero would move dW anywhere. ``weight`` is a Python float: no host sync."""
        for param, anchor in zip(self.params, self.anchors):
            param.lerp_(anchor, weight)


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Token ids to the training device without blocking the host (pinned, asynchronous on CUDA)."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)
