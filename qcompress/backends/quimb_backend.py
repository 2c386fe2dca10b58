"""Exact, differentiable simulation: a Cirq circuit as a quimb tensor network contracted with torch.

Compile time does all structural work: the circuit becomes a quimb TensorNetwork gate by gate,
connected constant gates (e.g. a CNOT ladder) are contracted together while the result spans at
most ``fold_qubits`` qubits, single-qubit symbolic gates are planned into those constant blocks
(see :mod:`~qcompress.backends.absorption`), and cotengra searches a contraction tree ONCE per
structure (see :mod:`~qcompress.backends.contraction_trees`). Each call then only builds the
gate arrays from the angle tensor (one einsum per gate family, one kron + matmul per block shape)
and feeds the kept tree the raw torch arrays, bypassing quimb's per-call machinery; nothing in
the hot path depends on the values. A real circuit (RY + CNOT) is detected and simulated in a
real dtype.

The backend itself compiles narrow circuits with the exact state-vector strategy of
:mod:`~qcompress.backends.statevector` instead, which is faster there; see :class:`QuimbBackend`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import cirq
import cotengra
import numpy as np
import quimb.tensor as qtn
import torch

from qcompress.backends.absorption import kron_all, plan_absorption
from qcompress.backends.base import Backend, CompiledCircuit, check_inputs
from qcompress.backends.contraction_trees import BATCH_INDEX, TREE_CACHE, TreeCache
from qcompress.backends.gate_tensors import GroupCollector, GroupEvaluator, SymbolicGroup
from qcompress.backends.statevector import StateVectorCircuit
from qcompress.circuits.base import Ansatz
from qcompress.errors import InputError

@dataclass
class CircuitNetwork:
    """The circuit's tensor network split into folded constants and symbolic gates grouped by family."""

    constants: list[qtn.Tensor]
    groups: list[SymbolicGroup]
    group_inds: list[list[tuple[str, ...]]]  # per group, per gate: (out..., in...) wire indices
    output_inds: tuple[str, ...]

    @property
    def is_real(self) -> bool:
        return all(np.isrealobj(t.data) or not np.abs(t.data.imag).any() for t in self.constants) and all(
            g.is_real for g in self.groups
        )


def build_network(ansatz: Ansatz, fold_qubits: int) -> CircuitNetwork:
    """Convert gate by gate: |0> vectors, constant gates via ``cirq.unitary``, symbolic gates into groups."""
    position = {q: i for i, q in enumerate(ansatz.qubits)}
    collector = GroupCollector(ansatz.weight_symbols, ansatz.data_symbols)
    wire = {q: f"q{position[q]}_0" for q in ansatz.qubits}
    counter = itertools.count(1)
    constants = [qtn.Tensor(np.array([1.0, 0.0]), inds=(wire[q],)) for q in ansatz.qubits]
    group_inds: list[list[tuple[str, ...]]] = []
    for op in ansatz.circuit.all_operations():
        if any(q not in position for q in op.qubits):
            raise InputError(f"operation {op} acts on a qubit outside the ansatz's qubits; add it to Ansatz.qubits")
        old = [wire[q] for q in op.qubits]
        step = next(counter)
        for q in op.qubits:
            wire[q] = f"q{position[q]}_{step}"
        inds = tuple(wire[q] for q in op.qubits) + tuple(old)
        shape = (2,) * len(inds)
        if cirq.is_parameterized(op):
            g, _ = collector.add(op.gate)
            if g == len(group_inds):
                group_inds.append([])
            group_inds[g].append(inds)
        else:
            constants.append(qtn.Tensor(cirq.unitary(op).reshape(shape), inds=inds))
    output = tuple(wire[q] for q in ansatz.qubits)
    return CircuitNetwork(fold_constants(constants, 2 * fold_qubits), collector.groups, group_inds, output)


def fold_constants(tensors: list[qtn.Tensor], max_legs: int) -> list[qtn.Tensor]:
    """Contract neighbouring constant tensors while the result has at most ``max_legs`` indices (done once)."""
    network = qtn.TensorNetwork(tensors)
    merged = True
    while merged:
        merged = False
        for tids in network.ind_map.values():
            if len(tids) != 2:
                continue
            first, second = (network.tensor_map[tid] for tid in tids)
            if len(set(first.inds) ^ set(second.inds)) <= max_legs:
                for tid in list(tids):
                    network.pop_tensor(tid)
                network.add_tensor(qtn.tensor_contract(first, second, preserve_tensor=True))
                merged = True
                break
    return list(network.tensors)


class BufferList(torch.nn.Module):
    """A list of tensors registered as non-persistent buffers: moved by ``.to()``, kept out of state dicts."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        super().__init__()
        self.size = len(tensors)
        for index, tensor in enumerate(tensors):
            self.register_buffer(str(index), tensor, persistent=False)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        return (getattr(self, str(index)) for index in range(self.size))


class QuimbCircuit(CompiledCircuit):
    """A compiled circuit: constants as torch buffers, gate-family evaluators, an absorption plan, a kept tree."""

    def __init__(self, ansatz: Ansatz, dtype: torch.dtype, fold_qubits: int, trees: TreeCache) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        super().__init__()
        self.n_qubits = ansatz.n_qubits
        self.n_weights = len(ansatz.weight_symbols)
        self.n_data = len(ansatz.data_symbols)
        self.dtype = dtype
        self.network = build_network(ansatz, fold_qubits)
        self.real = self.network.is_real
        array_dtype = dtype if self.real else (torch.complex128 if dtype == torch.float64 else torch.complex64)
        groups, group_inds = self.network.groups, self.network.group_inds
        self.evaluators = torch.nn.ModuleList(GroupEvaluator(g, self.real, dtype) for g in groups)
        self.absorbable = [g.constant.shape == (2, 2) for g in groups]
        pool_offsets = np.cumsum([0] + [len(i) if ok else 0 for i, ok in zip(group_inds, self.absorbable)]).tolist()
        per_sample = [g.source == "data" for g in groups]
        self.plan = plan_absorption(self.network.constants, group_inds, self.absorbable, pool_offsets, per_sample)

        def as_torch(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.real(array) if self.real else array).to(array_dtype)

        # every constant is a buffer, so the generator's .to(device) moves them all (see CompiledCircuit)
        self.plain_constants = BufferList([as_torch(self.network.constants[c].data) for c in self.plan.plain_constants])
        self.batch_slots = BufferList([torch.tensor(b.gate_slots) for b in self.plan.batches])
        self.batch_matrices = BufferList([as_torch(np.stack(b.matrices)) for b in self.plan.batches])
        self.batch_shapes = [((len(b.inds), *(2,) * len(b.inds[0])), b.per_sample) for b in self.plan.batches]
        self.standalone = BufferList([torch.tensor(positions, dtype=torch.long) for positions in self.plan.standalone])
        self._trees = trees

    def input_indices(self, batched: bool) -> list[tuple[str, ...]]:
        """Index names of every network tensor, in the order :meth:`arrays` returns them."""
        inputs = [tuple(self.network.constants[c].inds) for c in self.plan.plain_constants]
        for batch in self.plan.batches:
            prefix = (BATCH_INDEX,) if batched and batch.per_sample else ()
            inputs.extend(prefix + inds for inds in batch.inds)
        for group, inds, positions in zip(self.network.groups, self.network.group_inds, self.plan.standalone):
            prefix = (BATCH_INDEX,) if batched and group.source == "data" else ()
            inputs.extend(prefix + inds[p] for p in positions)
        return inputs

    def contraction_tree(self, batch: int | None = None) -> cotengra.ContractionTree:
        """The kept tree for this structure (and data batch size), searched at most once per cache."""
        inputs = self.input_indices(batch is not None)
        output = ((BATCH_INDEX,) if batch is not None else ()) + self.network.output_inds
        sizes = {ind: 2 for term in inputs for ind in term}
        if batch is not None:
            sizes[BATCH_INDEX] = batch
        return self._trees.get(inputs, output, sizes)

    def arrays(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every tensor of the network, in tree input order, built from the given angles (autograd intact)."""
        self._check(weights, data)
        values = {"weights": weights, "data": data if data is not None else weights.new_zeros(1, 0)}
        mats = [evaluator(values[evaluator.source]) for evaluator in self.evaluators]
        arrays = list(self.plain_constants)
        if self.batch_shapes:
            absorbed = [m for m, ok in zip(mats, self.absorbable) if ok]
            if data is not None:  # weight gates are shared by all samples: broadcast, don't recompute
                absorbed = [m.expand(data.shape[0], *m.shape) if m.ndim == 3 else m for m in absorbed]
            pool = torch.cat(absorbed, dim=-3)
            pool = torch.cat([pool, pool.transpose(-1, -2)], dim=-3)  # (..., 2G, 2, 2)
            shared = pool if data is None else pool[0]
            for slots, matrices, (shape, per_sample) in zip(self.batch_slots, self.batch_matrices, self.batch_shapes):
                if per_sample:
                    blocks = (kron_all(pool[:, slots]) @ matrices).movedim(0, 1)  # (n, batch, 2^k, rest)
                    arrays.extend(blocks.reshape(shape[0], -1, *shape[1:]).unbind(0))
                else:
                    arrays.extend((kron_all(shared[slots]) @ matrices).reshape(shape).unbind(0))
        for group_mats, positions, inds in zip(mats, self.standalone, self.network.group_inds):
            if len(positions):
                chosen = group_mats.index_select(-3, positions).movedim(-3, 0)  # (G, [batch,] d, d)
                arrays.extend(chosen.reshape(*chosen.shape[:-2], *(2,) * len(inds[0])).unbind(0))
        return arrays

    def _check(self, weights: torch.Tensor, data: torch.Tensor | None) -> None:
        check_inputs(weights, data, self.n_weights, self.n_data)

    def probabilities(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        batch = None if data is None else data.shape[0]
        arrays = self.arrays(weights.to(self.dtype), None if data is None else data.to(self.dtype))
        amplitudes = self.contraction_tree(batch).contract(arrays, backend="torch")
        amplitudes = amplitudes.reshape(-1, 2**self.n_qubits) if batch is not None else amplitudes.reshape(-1)
        if self.real:
            return amplitudes * amplitudes
        return amplitudes.real**2 + amplitudes.imag**2

    def tensor_network(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> qtn.TensorNetwork:
        """The same network as a quimb TensorNetwork of torch arrays, for inspection or quimb's own tools."""
        inputs = self.input_indices(data is not None)
        return qtn.TensorNetwork([qtn.Tensor(a, inds=i) for a, i in zip(self.arrays(weights, data), inputs)])


# Exact strategies, picked per width and device. On the CPU, below this many qubits the state
# vector (one GEMM per 4-qubit rotation block, one gather per CNOT ladder) is as fast or faster;
# from it on the tensor network's tree, which folds each CNOT ladder into the rotation blocks and
# so makes fewer passes over a state that no longer fits in cache, is (1.2-1.7x at N = 17-18).
# Measured on the CPU, 1 thread, QPA L = 8, forward+backward: `tools/bench/run.py generator
# --qubits 8 12 16 17 18 19 20`. On any other device the state vector runs at every width: there
# a step is bound by kernel launches up to N ~ 20 and by memory bandwidth only beyond, and the
# state vector issues fewer kernels (249 / 465 / 537 compute ops per step at N = 8 / 20 / 24,
# against 345 / 639 / 763) in the same sequence as the plain-torch reference of tools/bench.
STATEVECTOR_BELOW_QUBITS = 17
STRATEGIES = ("auto", "network", "statevector")


class ExactCircuit(CompiledCircuit):
    """Both exact strategies of one ansatz; each call runs the one faster on the weights' device.

    Deciding per call (a device type is known without a host sync) rather than at compile time
    lets a generator compiled on the CPU and moved with ``.to("cuda")`` switch strategy with it.
    """

    def __init__(self, network: QuimbCircuit, statevector: StateVectorCircuit) -> None:
        super().__init__()
        self.n_qubits = network.n_qubits
        self.network = network
        self.statevector = statevector

    def strategy_for(self, device: torch.device) -> CompiledCircuit:
        """The tensor network on the CPU (this is only built at widths where it wins there), else the state vector."""
        return self.network if device.type == "cpu" else self.statevector

    def probabilities(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        return self.strategy_for(weights.device).probabilities(weights, data)


class QuimbBackend(Backend):
    """Exact simulation with autograd, by the faster of two exact strategies for the width and device.

    ``strategy`` 'network' is the quimb tensor network (``fold_qubits`` bounds how large
    pre-contracted constant blocks may get), 'statevector' the state-vector simulator of
    :mod:`~qcompress.backends.statevector`, 'auto' (default) the state vector below
    ``statevector_below`` qubits and, from there on, both: the network runs on the CPU, the state
    vector on any other device. Both are exact and built from the same gate tensors, so the choice
    changes speed, not results beyond float rounding.
    """

    name: ClassVar[str] = "quimb"
    differentiable: ClassVar[bool] = True

    def __init__(self, fold_qubits: int = 5, trees: TreeCache = TREE_CACHE, strategy: str = "auto",
                 statevector_below: int = STATEVECTOR_BELOW_QUBITS) -> None:
        if strategy not in STRATEGIES:
            raise InputError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        self.fold_qubits = fold_qubits
        self.trees = trees
        self.strategy = strategy
        self.statevector_below = statevector_below

    def compile(self, ansatz: Ansatz, dtype: torch.dtype = torch.float32) -> QuimbCircuit | StateVectorCircuit | ExactCircuit:
        wide = ansatz.n_qubits >= self.statevector_below
        if self.strategy == "statevector" or (self.strategy == "auto" and not wide):
            return StateVectorCircuit(ansatz, dtype)
        network = QuimbCircuit(ansatz, dtype, self.fold_qubits, self.trees)
        if self.strategy == "network":
            return network
        return ExactCircuit(network, StateVectorCircuit(ansatz, dtype))
