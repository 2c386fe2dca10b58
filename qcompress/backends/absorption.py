"""Compile-time plan that absorbs single-qubit symbolic gates into neighbouring constant tensors.

Most tensors of a rotation-layer circuit are 2x2 gates; contracting each one separately costs a
kernel launch (and its backward) per gate. Up to ``MAX_ABSORBED`` such gates touching one constant
tensor T are instead applied together: T is stored once, permuted to a (2^k, rest) matrix with
the touched legs first, and per call ``kron(gates) @ T`` is ONE batched matmul over all tensors
of the same shape. The contraction network then has a handful of tensors per layer instead of
one per gate. Only structure decides the plan; values never do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import quimb.tensor as qtn
import torch

MAX_ABSORBED = 4


@dataclass
class AbsorbBatch:
    """Constants of one matrix shape with k absorbed gates each, evaluated by one kron + one matmul."""

    gate_slots: list[list[int]] = field(default_factory=list)  # per tensor: k slots into the gate pool
    matrices: list[np.ndarray] = field(default_factory=list)  # per tensor: (2^k, rest)
    inds: list[tuple[str, ...]] = field(default_factory=list)  # per tensor: new legs then rest legs
    per_sample: bool = False  # some absorbed gate reads data: the result carries the batch index


@dataclass
class AbsorptionPlan:
    """Which constants stay plain, which absorb gates (batched by shape), which gates stay standalone."""

    plain_constants: list[int]
    batches: list[AbsorbBatch]
    standalone: list[list[int]]  # per group: positions of gates kept as their own tensors


def kron_all(mats: torch.Tensor) -> torch.Tensor:
    """Kronecker product along dim -3 of (..., k, a, b) -> (..., a^k, b^k); the first factor is most significant."""
    result = mats[..., 0, :, :]
    for k in range(1, mats.shape[-3]):
        factor = mats[..., k, :, :]
        # flatten, not reshape(*shape): no shape arithmetic on (possibly symbolic) leading dims in traced graphs
        result = (result[..., :, None, :, None] * factor[..., None, :, None, :]).flatten(-4, -3).flatten(-2, -1)
    return result


def plan_absorption(
    constants: list[qtn.Tensor],
    group_inds: list[list[tuple[str, ...]]],
    absorbable: list[bool],
    pool_offsets: list[int],
    per_sample: list[bool],
) -> AbsorptionPlan:
    """Attach each absorbable 2x2 gate to the constant holding its input wire (else its output wire).

    Gate slot ``pool_offsets[g] + p`` means gate p of group g as is (constant before the gate);
    adding the pool size (``pool_offsets[-1]``) selects its transpose (constant after the gate).
    ``per_sample[g]`` marks groups fed by data, whose blocks are batched separately.
    """
    owner = {ind: c for c, tensor in enumerate(constants) for ind in tensor.inds}
    attached: dict[int, list[tuple[str, str, int]]] = {}  # constant -> (touched leg, new leg, slot)
    standalone: list[list[int]] = [[] for _ in group_inds]
    sample_dependent: set[int] = set()
    pool_size = pool_offsets[-1]
    for g, gates in enumerate(group_inds):
        for p, inds in enumerate(gates):
            host = _attach(inds, owner, constants, attached, pool_offsets[g] + p, pool_size) if absorbable[g] else None
            if host is None:
                standalone[g].append(p)
            elif per_sample[g]:
                sample_dependent.add(host)
    batches: dict[tuple, AbsorbBatch] = {}
    for c, legs in sorted(attached.items()):
        tensor = constants[c]
        touched = [leg for leg, _, _ in legs]
        rest = [ind for ind in tensor.inds if ind not in touched]
        matrix = tensor.transpose(*touched, *rest).data.reshape(2 ** len(touched), -1)
        batch = batches.setdefault((matrix.shape, c in sample_dependent), AbsorbBatch(per_sample=c in sample_dependent))
        batch.gate_slots.append([slot for _, _, slot in legs])
        batch.matrices.append(matrix)
        batch.inds.append(tuple(new for _, new, _ in legs) + tuple(rest))
    plain = [c for c in range(len(constants)) if c not in attached]
    return AbsorptionPlan(plain, list(batches.values()), standalone)


def _attach(inds, owner, constants, attached, slot: int, pool_size: int) -> int | None:
    """The constant the gate was attached to, or None when neither neighbour can take it."""
    out_leg, in_leg = inds
    for touched, new, chosen in ((in_leg, out_leg, slot), (out_leg, in_leg, slot + pool_size)):
        c = owner.get(touched)
        if c is None:
            continue
        legs = attached.setdefault(c, [])
        taken = set(constants[c].inds) | {leg for _, leg, _ in legs}
        if len(legs) < MAX_ABSORBED and new not in taken:
            legs.append((touched, new, chosen))
            return c
        if not legs:
            del attached[c]
    return None
