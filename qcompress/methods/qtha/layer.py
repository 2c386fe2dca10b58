"""The trainable QTHA layer and its sibling groups: the form QTHA is trained in.

    h = TT_A(dropout(x))            tensor train in_features -> inner (default 256)
    a = MLP_A(h)                     Linear(inner -> r)
    y = QW(Q(a)) + CW(a)             Q: the r-qubit circuit per token (<Z_i> readout), QW, CW: Linear(r -> r)
    out = base(x) + TT_B(MLP_B(y)) * alpha / r     MLP_B: Linear(r -> inner), TT_B: inner -> out_features

Layers that read one input (``q_proj`` and ``v_proj`` of an attention block) compute their input
maps and circuits in one pass (:class:`SiblingBranches`), so a step launches a few large kernels
per block instead of many tiny ones per layer. :meth:`QthaLayer.folded` gives the linear pieces
folded around the circuit, from which :mod:`qcompress.methods.qtha.deploy` builds the deployed form.
"""

from __future__ import annotations


import torch
from torch.utils.checkpoint import checkpoint
from transformers.pytorch_utils import Conv1D

from qcompress.methods.qtha.ansatz import build_qtha_ansatz
from qcompress.methods.qtha.circuit import QthaStatevector
from qcompress.methods.qtha.deploy import FoldedQtha
from qcompress.methods.tensor_train import TTLinear
from qcompress.numerics import full_precision
from qcompress.methods.qtha.config import QthaConfig
from qcompress.methods.qtha.recompute import RecomputePolicy
from qcompress.methods.run_config import AdapterConfig


def base_features(layer: torch.nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of an nn.Linear or a GPT-2 Conv1D (whose weight is stored transposed)."""
    if isinstance(layer, Conv1D):
        return layer.weight.shape[0], layer.weight.shape[1]
    return layer.in_features, layer.out_features


def base_weight_bias(layer: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight as (out, in) float64 and bias (or None), whatever the layer kind."""
    weight = layer.weight.detach().double()
    bias = None if layer.bias is None else layer.bias.detach().double()
    return (weight.T if isinstance(layer, Conv1D) else weight), bias


class QthaLayer(torch.nn.Module):
    """A frozen base layer with the QTHA branch beside it (trainable: everything but ``base``).

    The branch up to the circuit (dropout, TT_A, MLP_A, the circuit) runs in the layer's
    :class:`SiblingBranches`, stacked with the layers that read the same input (a layer on its
    own is a group of one); :class:`~qcompress.methods.qtha.method.QthaAdapted` makes every
    layer :meth:`join` its group before the first forward."""

    def __init__(self, base: torch.nn.Module, adapter: AdapterConfig, qtha: QthaConfig, angles: torch.Tensor) -> None:
        super().__init__()
        rank = adapter.rank
        in_features, out_features = base_features(base)
        self.base = base
        self.rank, self.scale = rank, adapter.effective_alpha / rank
        self.dropout = torch.nn.Dropout(adapter.dropout)
        self.tt_a = TTLinear(in_features, qtha.inner, qtha.cores, qtha.bond)
        self.mlp_a = torch.nn.Linear(qtha.inner, rank)
        self.angles = torch.nn.Parameter(angles)
        self.qw = torch.nn.Linear(rank, rank)
        self.cw = torch.nn.Linear(rank, rank)
        self.mlp_b = torch.nn.Linear(rank, qtha.inner)
        self.tt_b = TTLinear(qtha.inner, out_features, qtha.cores, qtha.bond, zero_last=True)
        # a tuple, so the group (which holds its members) is not registered as a submodule: no state
        self._group: tuple[SiblingBranches, int] | None = None

    def join(self, group: SiblingBranches, index: int) -> None:
        """Become member ``index`` of ``group``."""
        self._group = (group, index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self._group is not None, "a QthaLayer runs once it has joined its sibling group"
        group, index = self._group
        a, q = group.branch(x, index)
        return self.base(x) + self.tt_b(self.mlp_b(self.qw(q) + self.cw(a))) * self.scale

    def folded(self) -> FoldedQtha:
        """Fold every linear piece (in float64; TT matrices from quimb) around the circuit."""
        with torch.no_grad():
            tt_a, tt_b = self.tt_a.dense_quimb().double(), self.tt_b.dense_quimb().double()
            w_a, b_a = self.mlp_a.weight.double(), self.mlp_a.bias.double()
            w_b, b_b = self.mlp_b.weight.double(), self.mlp_b.bias.double()
            to_out = w_b.T @ tt_b * self.scale  # (r, out): y -> branch output
            weight, bias = base_weight_bias(self.base)
            merged = weight + (tt_a @ w_a.T @ self.cw.weight.double().T @ to_out).T
            branch_bias = (b_a @ self.cw.weight.double().T + self.cw.bias.double() + self.qw.bias.double()) @ to_out
            branch_bias = branch_bias + b_b @ tt_b * self.scale
            bias = branch_bias if bias is None else bias + branch_bias
            readout = (self.qw.weight.double().T @ to_out).T  # (out, r)
            encode = (tt_a @ w_a.T).T  # (r, in)
            return FoldedQtha(merged.float(), bias.float(), encode.float(), b_a.float(), readout.float(),
                              self.angles.detach().float())


class SiblingBranches:
    """The QTHA branches of sibling layers (one input width, one parent) up to their circuits, computed together.

    Why: run per layer, the branch is a few tiny matmuls and a circuit of thousands of small
    kernels per step; siblings that read the same tensor (``q_proj``, ``v_proj``) can share one
    input matmul (TT_A and MLP_A of every member, concatenated) and one stacked circuit (member
    axis), which halves the kernels of an attention block and makes each larger. The first member
    called computes every member's (a, <Z>) and the others take theirs from it; a member called
    with another tensor, a second time, or in another grad mode recomputes, so sharing is an
    optimisation, never an assumption about the architecture. The result is dropped once every
    member has taken its part, so no step's graph outlives it. Whether the circuit keeps its
    intermediates for backward is the model-wide ``policy``'s call (:mod:`.recompute`)."""

    def __init__(self, members: list[QthaLayer], circuit: torch.nn.Module, policy: RecomputePolicy) -> None:
        self.members, self.circuit, self.policy = members, circuit, policy
        self._shared: tuple[torch.Tensor, bool, torch.Tensor, torch.Tensor, set[int]] | None = None

    def branch(self, x: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Member ``index``'s MLP_A output a and circuit output <Z> for input ``x``, both (..., r)."""
        grad = torch.is_grad_enabled()
        shared = self._shared
        if shared is None or shared[0] is not x or shared[1] != grad or index in shared[4]:
            shared = (x, grad, *self._compute(x), set())
        shared[4].add(index)
        self._shared = None if len(shared[4]) == len(self.members) else shared
        shape = (*x.shape[:-1], -1)
        return shared[2][:, index].reshape(shape), shared[3][:, index].reshape(shape)

    def _compute(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, <Z>), each (tokens, M, r), of every member.

        TT_A and MLP_A are both linear, so each member's input map is one (in, r) matrix and all
        members' are one matmul (one per member when dropout draws a mask per member)."""
        members = self.members
        flat = x.reshape(-1, x.shape[-1])
        maps = [member.tt_a.dense() @ member.mlp_a.weight.T for member in members]  # (in, r) each
        biases = torch.stack([member.mlp_a.bias for member in members])  # (M, r)
        if any(member.dropout.training and member.dropout.p > 0 for member in members):
            a = torch.stack([member.dropout(flat) @ map_ for member, map_ in zip(members, maps)], 1) + biases
        else:
            a = (flat @ torch.cat(maps, 1)).unflatten(-1, (len(members), -1)) + biases
        angles = torch.stack([member.angles for member in members])
        with full_precision(x.device):  # the circuit in float32 whatever --precision (qcompress.numerics)
            return a, self._circuit(angles, a.float())

    def _circuit(self, angles: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.policy.recompute(a.shape[0], a.device):
            # recomputed in backward instead of kept (.recompute says when); the circuit draws no
            # random numbers, so the RNG state need not be saved for the recomputation
            return checkpoint(self.circuit, angles, a, use_reentrant=False, preserve_rng_state=False)
        return self.circuit(angles, a)


class QuimbExpectation(torch.nn.Module):
    """The quimb reference of the per-token circuit, ``(weights, data) -> <Z>`` with the statevector's
    shapes (one circuit or M stacked), as a module so its constants move with the model."""

    def __init__(self, rank: int, depth: int) -> None:
        super().__init__()
        from qcompress.backends.quimb_backend import QuimbBackend

        self.circuit = QuimbBackend().compile(build_qtha_ansatz(rank, depth))

    def forward(self, weights: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        if weights.dim() == 1:
            return self.circuit.expectation_z(weights, data)
        return torch.stack([self.circuit.expectation_z(w, data[:, m]) for m, w in enumerate(weights)], 1)


def make_circuit(rank: int, depth: int, simulator: str) -> torch.nn.Module:
    """The per-token circuit ``(weights, data) -> <Z>``: plain-torch state vector, or the quimb backend (reference)."""
    if simulator == "statevector":
        return QthaStatevector(rank, depth)
    return QuimbExpectation(rank, depth)
