"""Deterministic batches: the blocks a step sees are a pure function of (seed, step).

That makes ``--resume`` exact without saving a data-loader state: a resumed run asks for the
same step numbers and gets the same blocks in the same order.
"""

from __future__ import annotations

import torch


class BlockSampler:
    """Shuffles the packed blocks once per epoch (seeded) and hands out micro-batches by step."""

    def __init__(self, blocks: torch.Tensor, batch_size: int, seed: int):
        self.blocks = blocks
        self.batch_size = batch_size
        self.seed = seed
        self._epoch_orders: dict[int, torch.Tensor] = {}

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch not in self._epoch_orders:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch_orders = {epoch: torch.randperm(len(self.blocks), generator=generator)}
        return self._epoch_orders[epoch]

    def batch(self, index: int) -> torch.Tensor:
        """The ``index``-th micro-batch of the run (``step * grad_accum + micro``)."""
        rows = []
        for position in range(index * self.batch_size, (index + 1) * self.batch_size):
            epoch, offset = divmod(position, len(self.blocks))
            rows.append(self._order(epoch)[offset])
        return self.blocks[torch.stack(rows)]
