"""The deployed form of QTHA: merged dense linear maps plus constant-gate circuits, run per group.

Collapse folds every linear piece of QTHA (both tensor trains, both MLPs, CW, the scale) into the
base weight and bias; what cannot be folded is the per-token circuit, whose input and output maps
are folded too (``encode``: x -> the circuits' angle sums, ``readout``: <Z> -> output). The trained gates are
prepared once in float64 and kept as constants in the inference form of
:mod:`qcompress.methods.qtha.compiled`. Folding each circuit layer into one dense (2*2^r)^2 matrix
instead would read 1 MB of constants per layer per token at r = 8 (memory-bound), so the gates
stay factored.

Generating a token runs these circuits once per adapted layer, where ONNX Runtime's cost is per
operation, not per number. Sibling layers that read the same input (``q_proj`` and ``v_proj`` of
one attention block) therefore share a :class:`QthaGroup`: the first member called computes every
member's circuit in one stacked pass (member axis) and the others reuse it, which halves the
operations per block. Each member's output is then a single matmul of ``[x, <Z> and norm of every
member]`` with its weight, readout and bias stacked. A member called with a different input
recomputes, so sharing is an optimisation, never an assumption about the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from qcompress.methods.qtha.circuit import QthaStatevector
from qcompress.methods.qtha.compiled import CompiledQthaCircuit

#: why the plain Hugging Face directory is refused for such a model (transformers would drop the circuit)
NOT_A_PLAIN_MODEL = (
    "a collapsed QTHA model keeps a per-token quantum branch that plain transformers cannot load: "
    "export it with --format onnx (ONNX Runtime runs the branch as ordinary tensor operations)"
)


@dataclass(frozen=True)
class FoldedQtha:
    """One adapted layer with everything linear folded: ``x W^T + b + circuit(x E^T + e) R^T``."""

    weight: torch.Tensor  # (out, in)
    bias: torch.Tensor  # (out,)
    encode: torch.Tensor  # (r, in)
    encode_bias: torch.Tensor  # (r,)
    readout: torch.Tensor  # (out, r)
    angles: torch.Tensor  # the circuit's trained angles


class QthaGroup(torch.nn.Module):
    """The circuits of sibling layers with one input: ``augmented(x) -> [x, circuit features] (tokens, in + M*(r+1))``."""

    def __init__(self, members: list[FoldedQtha], depth: int) -> None:
        super().__init__()
        rank, in_features = members[0].encode.shape
        self.rank, self.in_features, self.n_members = rank, in_features, len(members)
        with torch.no_grad():  # gates prepared in float64; the encode bias joins every layer's angle offsets
            exact = QthaStatevector(rank, depth).double()
            schedules = [exact.schedule(m.angles.double()) for m in members]
            schedules = [replace(s, offsets=s.offsets + m.encode_bias.double()) for s, m in zip(schedules, members)]
            self.circuits = CompiledQthaCircuit(schedules, rank)
            encode = torch.cat([m.encode for m in members]).T.double()  # (in, M*r)
            # x -> the circuits' angle sums in one matmul (float64 product, then float32)
            self.register_buffer("encode", (encode @ self.circuits.sums_map.double()).to(members[0].encode.dtype))
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def augmented(self, x: torch.Tensor) -> torch.Tensor:
        """``[x, <Z_1..r>, norm]`` per token (members in order); computed once per distinct input tensor."""
        if self._last is not None and self._last[0] is x:
            return self._last[1]
        flat = x.reshape(-1, self.in_features)
        result = torch.cat([flat, self.circuits.from_sums(flat @ self.encode)], -1)
        self._last = (x, result)
        return result


class QthaDeployed(torch.nn.Module):
    """``x -> x @ W^T + b + <Z>(x) @ R^T`` as one matmul of its group's augmented input with [W^T; R^T; b]."""

    def __init__(self, folded: FoldedQtha, group: QthaGroup, index: int) -> None:
        super().__init__()
        self.in_features, self.out_features = folded.weight.shape[1], folded.weight.shape[0]
        rank, width = group.rank, group.rank + 1
        stacked = torch.zeros(self.in_features + group.n_members * width, self.out_features, dtype=folded.weight.dtype)
        stacked[: self.in_features] = folded.weight.T
        start = self.in_features + index * width
        stacked[start : start + rank] = folded.readout.T
        stacked[start + rank] = folded.bias  # times the state's norm, which is 1
        self.register_buffer("weight", stacked)
        self._group = (group,)  # a tuple: the group is registered once, on the common parent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._group[0].augmented(x) @ self.weight
        return out.reshape(*x.shape[:-1], self.out_features)


def deploy_groups(parent: torch.nn.Module, members: dict[str, FoldedQtha], depth: int) -> dict[str, QthaDeployed]:
    """Deployed layers for the children ``members`` of ``parent``; one group per input width, registered on ``parent``."""
    by_width: dict[int, list[str]] = {}
    for child, folded in members.items():
        by_width.setdefault(folded.encode.shape[1], []).append(child)
    deployed = {}
    for number, children in enumerate(by_width.values()):
        group = QthaGroup([members[child] for child in children], depth)
        parent.add_module(f"qtha_circuits_{number}", group)
        deployed.update({child: QthaDeployed(members[child], group, i) for i, child in enumerate(children)})
    return deployed
