"""qcompress.training.batches: the blocks of a step are a pure function of (seed, step), each epoch a permutation."""

from __future__ import annotations

import torch

from qcompress.training.batches import BlockSampler

BLOCKS = torch.arange(7 * 3).view(7, 3)  # 7 blocks of 3 tokens; row i starts with 3 * i


def first_tokens(sampler: BlockSampler, indices: range) -> list[int]:
    return [int(row[0]) // 3 for index in indices for row in sampler.batch(index)]


def test_a_fresh_sampler_hands_out_the_same_batches_in_any_order():
    """What makes --resume exact without a data-loader state."""
    ordered = [BlockSampler(BLOCKS, 2, seed=4).batch(index) for index in range(9)]
    sampler = BlockSampler(BLOCKS, 2, seed=4)
    for index in (8, 0, 5, 3, 1, 7, 2, 6, 4):
        assert torch.equal(sampler.batch(index), ordered[index])


def test_every_epoch_is_a_fresh_permutation_of_all_blocks_and_batches_cross_epochs():
    sampler = BlockSampler(BLOCKS, 3, seed=0)
    seen = first_tokens(sampler, range(14))  # 42 positions: exactly 6 epochs of 7 blocks
    epochs = [seen[start : start + 7] for start in range(0, 42, 7)]
    assert all(sorted(epoch) == list(range(7)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) > 1  # reshuffled, not one order repeated
    assert sampler.batch(2).shape == (3, 3)  # positions 6, 7, 8: the last block of epoch 0, two of epoch 1


def test_the_seed_changes_the_order():
    assert first_tokens(BlockSampler(BLOCKS, 7, seed=0), range(1)) != first_tokens(BlockSampler(BLOCKS, 7, seed=1), range(1))
