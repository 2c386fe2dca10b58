"""The deployed form of QTHA: merged dense linear maps plus constant-gate circuits, run per group.

Collapse folds every linear piece of QTHA (both tensor trains, both MLPs, CW, the scale) into the
base weight and bias; what cannot be folded is the per-token circuit, whose input and output maps
are folded too (``encode``: x -> circuit angles, ``readout``: <Z> -> output). The trained gates are
prepared once in float64 (:meth:`~qcompress.methods.qtha_circuit.QthaStatevector.prepare`) and kept
as constants: per circuit layer the graph has the per-token encoding wall, two phase products and
one constant wall on 2^r amplitudes, all ordinary tensor operations for ONNX Runtime. Folding each
layer into one dense (2*2^r)^2 matrix instead would read 1 MB of constants per layer per token at
r = 8 (memory-bound), so the gates stay factored.

Generating a token runs these circuits once per adapted layer, where ONNX Runtime's cost is per
operation, not per number. Sibling layers that read the same input (``q_proj`` and ``v_proj`` of
one attention block) therefore share a :class:`QthaGroup`: the first member called computes every
member's circuit in one stacked pass (member axis) and the others reuse it, which halves the
operations per block. A member called with a different input recomputes, so sharing is an
optimisation, never an assumption about the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qcompress.export.qtha_compiled import CompiledQthaCircuit
from qcompress.methods.qtha_circuit import QthaStatevector

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
    """The circuits of sibling layers with one input, as stacked constants: ``expectations(x) -> (tokens, M, r)``."""

    def __init__(self, members: list[FoldedQtha], depth: int) -> None:
        super().__init__()
        rank, in_features = members[0].encode.shape
        self.rank, self.in_features, self.n_members = rank, in_features, len(members)
        # x -> all members' angles in one matmul: (in, M*r), then (M, tokens, r)
        self.register_buffer("encode", torch.cat([m.encode for m in members]).T.contiguous())
        self.register_buffer("encode_bias", torch.cat([m.encode_bias for m in members]))
        with torch.no_grad():  # gates prepared in float64, stored in float32
            exact = QthaStatevector(rank, depth).double()
            self.circuits = CompiledQthaCircuit([exact.schedule(m.angles.double()) for m in members], rank)
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def expectations(self, x: torch.Tensor) -> torch.Tensor:
        """<Z> of every member's circuit for the tokens of ``x``; computed once per distinct input tensor."""
        if self._last is not None and self._last[0] is x:
            return self._last[1]
        angles = x.reshape(-1, self.in_features) @ self.encode + self.encode_bias
        result = self.circuits(angles.reshape(-1, self.n_members, self.rank))  # (tokens, M, r)
        self._last = (x, result)
        return result


class QthaDeployed(torch.nn.Module):
    """``x -> x @ weight.T + bias + <Z>(x) @ readout.T``, the circuit computed by its group."""

    def __init__(self, folded: FoldedQtha, group: QthaGroup, index: int) -> None:
        super().__init__()
        self.in_features, self.out_features = folded.weight.shape[1], folded.weight.shape[0]
        self.weight = torch.nn.Parameter(folded.weight, requires_grad=False)
        self.bias = torch.nn.Parameter(folded.bias, requires_grad=False)
        self.register_buffer("readout", folded.readout.T.contiguous())  # (r, out)
        self._group = (group,)  # a tuple: the group is registered once, on the common parent
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.linear(x, self.weight, self.bias)
        branch = self._group[0].expectations(x).select(1, self.index) @ self.readout
        return out + branch.view_as(out)


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
