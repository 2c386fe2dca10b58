"""Exact, differentiable state-vector simulation of any Cirq ansatz, from the same gate tensors as quimb.

The tensor-network strategy (:mod:`~qcompress.backends.quimb_backend`) contracts a searched tree of
pairwise tensordots; every contraction with the 2^N-sized state is a permute plus a GEMM, and each is
a separate kernel in forward and backward. This strategy instead walks the circuit once at compile
time and turns it into a short, fixed list of whole-state steps:

* single-qubit gates (symbolic ones from :class:`~qcompress.backends.gate_tensors.GroupEvaluator`,
  constant ones via ``cirq.unitary``) are collected until an entangling gate needs their qubits,
  then applied in Kronecker blocks of up to ``block_qubits`` qubits, ONE GEMM per block on a
  transposed view: the block's qubits are the state's most significant axes and come out as its
  least significant ones, so the qubit order rotates instead of being permuted by a copy;
* before the first entangling gate the state is a product state, built as one outer product;
* runs of constant multi-qubit gates that map basis states to basis states (CNOT, CZ, SWAP,
  Toffoli, ...) are composed at compile time into ONE index gather (times a phase vector when
  any phase differs from 1), whose backward is the inverse gather rather than a scatter-add;
* any other multi-qubit gate is applied as its own (2^k, 2^k) matrix on its axes.

Only structure decides the steps; values never do, and every constant is a non-persistent buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import cirq
import numpy as np
import torch

from qcompress.backends.absorption import kron_all
from qcompress.backends.base import CompiledCircuit, check_inputs
from qcompress.backends.gate_tensors import GroupCollector, GroupEvaluator
from qcompress.circuits.base import Ansatz
from qcompress.errors import InputError

_REAL_TOLERANCE = 1e-12


class Gather(torch.autograd.Function):
    """``x.index_select(-1, forward)`` whose backward is the inverse gather, not autograd's scatter-add.

    A permutation's adjoint is the inverse permutation: a gather is both faster than ``index_add``
    and deterministic on every device.
    """

    @staticmethod
    def forward(ctx, state: torch.Tensor, forward: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        return state.index_select(-1, forward)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(-1, inverse), None, None


@dataclass(frozen=True)
class Step:
    """One whole-state operation, by ``kind``:

    'block': a Kronecker block of ``first`` qubits, entry ``second`` of that size's stack;
    'gate': a multi-qubit symbolic gate, group ``first``, position ``second``;
    'matrix': constant multi-qubit matrix number ``first``; 'gather': composed permutation ``first``;
    'permute': reorder the axes to ``axes`` (a copy, only where no rotation gets there for free).
    """

    kind: str
    first: int = 0
    second: int = 0
    axes: tuple[int, ...] = ()  # 'permute': the new axis order


def monomial(unitary: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(row of each column's one nonzero, its value) when ``unitary`` maps basis states to basis states."""
    nonzero = np.abs(unitary) > _REAL_TOLERANCE
    if not (nonzero.sum(axis=0) == 1).all():
        return None
    rows = nonzero.argmax(axis=0)
    return rows, unitary[rows, np.arange(unitary.shape[1])]


class StateVectorPlan:
    """Compile-time walk over the circuit: steps, Kronecker blocks, composed gathers, qubit layout.

    ``layout[i]`` is the qubit held by the state's i-th most significant axis; the plan keeps it
    known at every step so that gathers are computed for the layout they will meet.
    """

    def __init__(self, ansatz: Ansatz, block_qubits: int) -> None:
        if block_qubits < 1:
            raise InputError(f"block_qubits must be >= 1, got {block_qubits}")
        self.n = ansatz.n_qubits
        self.block_qubits = block_qubits
        self.position = {q: i for i, q in enumerate(ansatz.qubits)}
        self.collector = GroupCollector(ansatz.weight_symbols, ansatz.data_symbols)
        self.layout = list(range(self.n))
        self.steps: list[Step] = []
        self.single_constants: list[np.ndarray] = [np.eye(2)]  # slot 0 of the constant pool: identity
        # qubit -> ('sym', group, position in group) or ('const', -1, index into single_constants)
        self.pending: dict[int, tuple[str, int, int]] = {}
        self.product_slots: list[tuple[str, int, int]] | None = None  # per qubit, the first layer's gates
        self.blocks: dict[int, list[list[tuple[str, int, int]]]] = {}  # block size -> per block its gate refs
        self.matrices: list[np.ndarray] = []
        self.gathers: list[tuple[np.ndarray, np.ndarray | None]] = []  # distinct (source, phase) pairs
        self._gather_index: dict[tuple, int] = {}
        self._gather_run: list[tuple[tuple[int, ...], np.ndarray, np.ndarray]] = []  # (axes, rows, values)
        for op in ansatz.circuit.all_operations():
            self._add(op)
        self._flush()
        if self.product_slots is None:
            self._materialise()
        if self.layout != list(range(self.n)):
            self._end_gather_run()
            self.steps.append(Step("permute", axes=tuple(self.layout.index(q) for q in range(self.n))))

    # -- walking the circuit -------------------------------------------------------------------
    def _add(self, op: cirq.Operation) -> None:
        if any(q not in self.position for q in op.qubits):
            raise InputError(f"operation {op} acts on a qubit outside the ansatz's qubits; add it to Ansatz.qubits")
        qubits = [self.position[q] for q in op.qubits]
        if not qubits:
            return  # a global phase: no effect on probabilities
        if cirq.is_parameterized(op):
            g, p = self.collector.add(op.gate)
            if len(qubits) == 1:
                self._single(qubits[0], ("sym", g, p))
            else:
                self._local(qubits, Step("gate", g, p))
            return
        unitary = cirq.unitary(op)
        if len(qubits) == 1:
            self.single_constants.append(unitary)
            self._single(qubits[0], ("const", -1, len(self.single_constants) - 1))
            return
        mapping = monomial(unitary)
        if mapping is None:
            self.matrices.append(unitary)
            self._local(qubits, Step("matrix", len(self.matrices) - 1))
            return
        self._flush_qubits(qubits)
        self._materialise()
        self._compose_gather(qubits, *mapping)

    def _single(self, qubit: int, ref: tuple[str, int, int]) -> None:
        if qubit in self.pending:  # a second gate on the same qubit: apply what is waiting first
            self._flush()
        self.pending[qubit] = ref

    def _local(self, qubits: list[int], step: Step) -> None:
        self._flush_qubits(qubits)
        self._materialise()
        self._end_gather_run()
        self._to_top(qubits)
        self.steps.append(step)
        self._rotate(len(qubits))

    def _flush_qubits(self, qubits: list[int]) -> None:
        """Apply waiting single-qubit gates before a gate on ``qubits`` (all of them: blocks stay wide)."""
        if any(q in self.pending for q in qubits):
            self._flush()

    def _flush(self) -> None:
        """Apply every waiting single-qubit gate: into the product state, or as blocks in layout order."""
        if not self.pending:
            return
        if self.product_slots is None:
            self.product_slots = [self.pending.get(q, ("const", -1, 0)) for q in range(self.n)]
            self.pending = {}
            return
        self._end_gather_run()
        waiting = [q for q in self.layout if q in self.pending]
        for start in range(0, len(waiting), self.block_qubits):
            chunk = waiting[start : start + self.block_qubits]
            self._to_top(chunk)
            blocks = self.blocks.setdefault(len(chunk), [])
            blocks.append([self.pending[q] for q in chunk])
            self.steps.append(Step("block", len(chunk), len(blocks) - 1))
            self._rotate(len(chunk))
        self.pending = {}

    def _materialise(self) -> None:
        """The product state becomes a full state vector (qubits with no gate yet are in |0>)."""
        if self.product_slots is None:
            self.product_slots = [("const", -1, 0)] * self.n

    def _to_top(self, qubits: list[int]) -> None:
        """Make ``qubits`` the most significant axes, in this order: free when they already are."""
        if self.layout[: len(qubits)] == qubits:
            return
        self._end_gather_run()
        new = qubits + [q for q in self.layout if q not in qubits]
        self.steps.append(Step("permute", axes=tuple(self.layout.index(q) for q in new)))
        self.layout = new

    def _rotate(self, k: int) -> None:
        """A block applied to the top k axes leaves them as the least significant ones (see _apply_top)."""
        self.layout = self.layout[k:] + self.layout[:k]

    def _compose_gather(self, qubits: list[int], rows: np.ndarray, values: np.ndarray) -> None:
        """Queue one basis-permuting gate on the current run (the layout cannot change within a run)."""
        self._gather_run.append((tuple(self.layout.index(q) for q in qubits), rows, values))

    def _end_gather_run(self) -> None:
        """Close the run as one gather step; identical runs (every layer of a ladder) share one gather."""
        if not self._gather_run:
            return
        key = tuple((axes, rows.tobytes(), values.tobytes()) for axes, rows, values in self._gather_run)
        if key not in self._gather_index:
            self._gather_index[key] = len(self.gathers)
            self.gathers.append(compose_basis_maps(self.n, self._gather_run))
        self._gather_run = []
        self.steps.append(Step("gather", self._gather_index[key]))

    def finish(self) -> None:
        self._end_gather_run()


def compose_basis_maps(n_qubits: int, gates: list[tuple[tuple[int, ...], np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray | None]:
    """(source, phase) with new[y] = phase[y] * old[source[y]] for gates applied in order; phase None when all 1.

    Each gate (axes, rows, values) sends local basis state j of its axes to values[j] * |rows[j]>, so
    its effect on the index array is 2^k strided slice copies: one pass over 2^N entries per gate.
    """
    shape = (2,) * n_qubits
    # int32 indices halve a gather's memory traffic (index_select takes them on CPU and CUDA)
    source = np.arange(2**n_qubits, dtype=np.int32 if n_qubits < 31 else np.int64).reshape(shape)
    phased = any(np.abs(values - 1).max() > _REAL_TOLERANCE for _, _, values in gates)
    phase = np.ones(shape, dtype=np.complex128) if phased else None
    for axes, rows, values in gates:
        new_source = np.empty_like(source)
        new_phase = None if phase is None else np.empty_like(phase)
        for j, (row, value) in enumerate(zip(rows, values)):
            to, at = _basis_slice(n_qubits, axes, int(row)), _basis_slice(n_qubits, axes, j)
            new_source[to] = source[at]
            if phase is not None:
                new_phase[to] = phase[at] * value
        source, phase = new_source, new_phase
    return source.reshape(-1), None if phase is None else phase.reshape(-1)


def _basis_slice(n_qubits: int, axes: tuple[int, ...], local: int) -> tuple[int | slice, ...]:
    """Index of the sub-array where ``axes`` hold the bits of ``local`` (the first axis most significant)."""
    index: list[int | slice] = [slice(None)] * n_qubits
    for i, axis in enumerate(axes):
        index[axis] = (local >> (len(axes) - 1 - i)) & 1
    return tuple(index)


class StateVectorCircuit(CompiledCircuit):
    """A compiled :class:`StateVectorPlan`: gate evaluators, Kronecker slot tables, gathers as buffers."""

    def __init__(self, ansatz: Ansatz, dtype: torch.dtype, block_qubits: int = 4) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        super().__init__()
        plan = StateVectorPlan(ansatz, block_qubits)
        plan.finish()
        self.n_qubits = ansatz.n_qubits
        self.n_weights = len(ansatz.weight_symbols)
        self.n_data = len(ansatz.data_symbols)
        self.dtype = dtype
        self.steps = plan.steps
        self.gate_groups = {step.first for step in plan.steps if step.kind == "gate"}  # multi-qubit symbolic
        groups = plan.collector.groups
        constants = [*plan.single_constants, *plan.matrices, *(p for _, p in plan.gathers if p is not None)]
        self.real = all(g.is_real for g in groups) and all(np.abs(np.imag(c)).max() <= _REAL_TOLERANCE for c in constants)
        self.array_dtype = dtype if self.real else (torch.complex128 if dtype == torch.float64 else torch.complex64)
        self.evaluators = torch.nn.ModuleList(GroupEvaluator(g, self.real, dtype) for g in groups)
        # the single-qubit pool: every 2x2 symbolic group's matrices, then the constant 2x2 gates
        self.pooled = [g.constant.shape == (2, 2) for g in groups]
        offsets = np.cumsum([0] + [len(g.symbol_index) if ok else 0 for g, ok in zip(groups, self.pooled)]).tolist()

        def slot(ref: tuple[str, int, int]) -> int:
            kind, g, p = ref
            return offsets[g] + p if kind == "sym" else offsets[-1] + p

        def as_torch(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.real(array) if self.real else array).to(self.array_dtype)

        self.register_buffer("single_constants", as_torch(np.stack(plan.single_constants)), persistent=False)
        self.register_buffer("product_slots", torch.tensor([slot(r) for r in plan.product_slots]), persistent=False)
        self.block_sizes = sorted(plan.blocks)
        for k in self.block_sizes:
            slots = torch.tensor([[slot(r) for r in refs] for refs in plan.blocks[k]])
            self.register_buffer(f"block_slots_{k}", slots, persistent=False)
        for c, matrix in enumerate(plan.matrices):
            self.register_buffer(f"matrix_{c}", as_torch(matrix), persistent=False)
        for c, (forward, phase) in enumerate(plan.gathers):
            inverse = np.empty_like(forward)
            inverse[forward] = np.arange(forward.size, dtype=forward.dtype)
            self.register_buffer(f"gather_{c}", torch.from_numpy(forward), persistent=False)
            self.register_buffer(f"inverse_{c}", torch.from_numpy(inverse), persistent=False)
            self.register_buffer(f"phase_{c}", None if phase is None else as_torch(phase), persistent=False)

    def _check(self, weights: torch.Tensor, data: torch.Tensor | None) -> None:
        check_inputs(weights, data, self.n_weights, self.n_data)

    def amplitudes(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, 2^N) amplitudes, batch 1 without data; qubit 0 most significant."""
        self._check(weights, data)
        values = {"weights": weights.to(self.dtype), "data": weights.new_zeros(1, 0) if data is None else data.to(self.dtype)}
        batch = 1 if data is None else data.shape[0]
        mats = [evaluator(values[evaluator.source]).to(self.array_dtype) for evaluator in self.evaluators]
        pool = self._single_pool(mats, batch, data is not None)  # ([batch,] slots, 2, 2)
        # unbind, not one index per step: each select's backward would allocate and copy the whole stack
        krons = {k: kron_all(pool[..., getattr(self, f"block_slots_{k}"), :, :]).unbind(-3) for k in self.block_sizes}
        gates = [m.unbind(-3) if g in self.gate_groups else () for g, m in enumerate(mats)]
        columns = pool[..., self.product_slots, :, 0:1]  # each qubit's first gate applied to |0>
        state = kron_all(columns).reshape(-1, 2**self.n_qubits).expand(batch, -1)
        for step in self.steps:
            if step.kind == "block":
                state = _apply_top(state, krons[step.first][step.second])
            elif step.kind == "gather":
                state = Gather.apply(state, getattr(self, f"gather_{step.first}"), getattr(self, f"inverse_{step.first}"))
                phase = getattr(self, f"phase_{step.first}")
                if phase is not None:
                    state = state * phase
            elif step.kind == "permute":
                state = state.reshape(batch, *(2,) * self.n_qubits).permute(0, *(a + 1 for a in step.axes)).reshape(batch, -1)
            else:
                matrix = gates[step.first][step.second] if step.kind == "gate" else getattr(self, f"matrix_{step.first}")
                state = _apply_top(state, matrix)
        return state

    def _single_pool(self, mats: list[torch.Tensor], batch: int, batched: bool) -> torch.Tensor:
        """All 2x2 gate matrices in slot order; with data, weight gates are broadcast over the batch."""
        parts = [m for m, ok in zip(mats, self.pooled) if ok] + [self.single_constants]
        if batched:
            parts = [p if p.ndim == 4 else p.expand(batch, *p.shape) for p in parts]
        return torch.cat(parts, dim=-3)

    def probabilities(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        amplitudes = self.amplitudes(weights, data)
        probs = amplitudes * amplitudes if self.real else amplitudes.real**2 + amplitudes.imag**2
        return probs.reshape(-1) if data is None else probs  # reshape, not [0]: no copy in backward


def _apply_top(state: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` on the state's most significant log2(d) qubits, ONE GEMM on a transposed view.

    Viewing the (batch, 2^N) state as (batch, d, rest) and multiplying its transpose by matrix^T
    leaves the result as (batch, rest, d): the block's qubits become the least significant, which
    the plan's layout tracks, and no permuted copy of the state is ever made.
    """
    batch, d = state.shape[0], matrix.shape[-1]
    if batch == 1 and matrix.ndim == 2:
        # one plain GEMM with a transposed operand; reshape, not [0]: select's backward would copy the state
        return (state.reshape(d, -1).t() @ matrix.t()).reshape(1, -1)
    return (state.reshape(batch, d, -1).transpose(1, 2) @ matrix.transpose(-1, -2)).reshape(batch, -1)
