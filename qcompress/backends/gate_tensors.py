"""Cirq operations as arrays: constant gates once, symbolic gates as batched torch functions of the angles.

Every symbolic gate Cirq offers through ``EigenGate`` (RX/RY/RZ, X/Y/Z/CZ/CNOT powers, ...) and
its controlled versions can be written as ``U(t) = C + sum_k exp(i*pi*t*e_k) P_k`` with ``t`` the
gate's exponent. Gates sharing (C, e, P) form a :class:`SymbolicGroup` whose matrices are built
by ONE batched einsum from the angle tensor, so autograd flows and no per-gate Python runs.
The exponent must be affine in one symbol (``theta``, ``2*theta``, ``theta/pi + 0.5``), because
that keeps the evaluation a gather plus a fused multiply-add.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cirq
import numpy as np
import sympy
import torch

from qcompress.errors import CapabilityError, InputError

_REAL_TOLERANCE = 1e-12


@dataclass
class SymbolicGroup:
    """Gates with one shared decomposition; ``source`` says which vector ('weights' or 'data') feeds them."""

    source: str
    constant: np.ndarray  # (d, d) complex
    phases: np.ndarray  # (K,) real, the e_k
    projectors: np.ndarray  # (K, d, d) complex
    symbol_index: list[int] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    offset: list[float] = field(default_factory=list)

    @property
    def is_real(self) -> bool:
        """True when U(t) is real for every real t (checked on sample exponents, since it is structural)."""
        for t in (0.137, 0.5, 1.0, 1.713):
            if np.abs(self.matrices_numpy(np.array([t])).imag).max() > _REAL_TOLERANCE:
                return False
        return True

    def matrices_numpy(self, exponents: np.ndarray) -> np.ndarray:
        factors = np.exp(1j * np.pi * exponents[..., None] * self.phases)
        return self.constant + np.einsum("...k,kij->...ij", factors, self.projectors)


class GroupEvaluator(torch.nn.Module):
    """Torch form of one :class:`SymbolicGroup`: values -> (..., G, d, d) gate matrices in one einsum."""

    def __init__(self, group: SymbolicGroup, real: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.source = group.source
        self.real = real
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.register_buffer("index", torch.tensor(group.symbol_index, dtype=torch.long), persistent=False)
        self.register_buffer("scale", torch.tensor(group.scale, dtype=dtype), persistent=False)
        self.register_buffer("offset", torch.tensor(group.offset, dtype=dtype), persistent=False)
        self.register_buffer("phases", torch.tensor(np.pi * group.phases, dtype=dtype), persistent=False)
        if real:
            self.register_buffer("constant", torch.tensor(group.constant.real, dtype=dtype), persistent=False)
            # Re(sum_k e^{i a_k} P_k) = sum_k cos(a_k) Re P_k + sin(a_k) (-Im P_k): one einsum over 2K terms
            basis = np.concatenate([group.projectors.real, -group.projectors.imag])
            self.register_buffer("real_basis", torch.tensor(basis, dtype=dtype), persistent=False)
        else:
            self.register_buffer("constant", torch.tensor(group.constant, dtype=complex_dtype), persistent=False)
            self.register_buffer("proj", torch.tensor(group.projectors, dtype=complex_dtype), persistent=False)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        exponents = values[..., self.index] * self.scale + self.offset
        angles = exponents.unsqueeze(-1) * self.phases
        if self.real:
            trig = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
            return self.constant + torch.einsum("...k,kij->...ij", trig, self.real_basis)
        # .to(): Module.double() casts the real buffers above but not the complex ones; the circuit
        # keeps the precision it was compiled in, as its callers cast their results to it anyway
        factors = torch.polar(torch.ones_like(angles), angles).to(self.proj.dtype)
        return self.constant + torch.einsum("...k,kij->...ij", factors, self.proj)


def affine_exponent(exponent: sympy.Expr, symbols: dict[sympy.Symbol, tuple[str, int]]) -> tuple[str, int, float, float]:
    """(source, index, a, b) with exponent == a * symbol + b, or a one-line error naming the expression."""
    free = exponent.free_symbols
    if len(free) != 1:
        raise CapabilityError(f"gate exponent {exponent} must depend on exactly one symbol; use one symbol per gate")
    (symbol,) = free
    if symbol not in symbols:
        raise InputError(f"circuit symbol {symbol} is in neither weight_symbols nor data_symbols of the ansatz")
    slope = sympy.diff(exponent, symbol)
    if slope.free_symbols:
        raise CapabilityError(f"gate exponent {exponent} is not affine in {symbol}; write it as a*{symbol}+b")
    source, index = symbols[symbol]
    return source, index, float(slope), float(exponent.subs(symbol, 0))


def eigen_decomposition(gate: cirq.Gate) -> tuple[np.ndarray, np.ndarray, np.ndarray, sympy.Expr]:
    """(C, e, P, exponent) of a symbolic EigenGate, or of a ControlledGate around one (all controls on |1>)."""
    if isinstance(gate, cirq.ControlledGate):
        if list(gate.control_values.expand()) != [(1,) * gate.num_controls()]:
            raise CapabilityError(f"controlled gate {gate} must be controlled on |1>; add X gates around the controls")
        sub_constant, phases, sub_projectors, exponent = eigen_decomposition(gate.sub_gate)
        n_controls = gate.num_controls()
        active = np.zeros((2**n_controls, 2**n_controls))
        active[-1, -1] = 1.0
        sub_dim = sub_projectors.shape[-1]
        constant = np.kron(np.eye(2**n_controls) - active, np.eye(sub_dim)) + np.kron(active, sub_constant)
        projectors = np.stack([np.kron(active, p) for p in sub_projectors])
        return constant, phases, projectors, exponent
    if isinstance(gate, cirq.EigenGate):
        components = gate._eigen_components()
        phases = np.array([half_turns + gate.global_shift for half_turns, _ in components], dtype=float)
        projectors = np.stack([np.asarray(p, dtype=complex) for _, p in components])
        return np.zeros_like(projectors[0]), phases, projectors, sympy.sympify(gate.exponent)
    raise CapabilityError(f"symbolic gate {gate!r} is not supported; use Cirq rotation/power gates (rx, ry, rz, CZPowGate, ...)")


def group_key(source: str, constant: np.ndarray, phases: np.ndarray, projectors: np.ndarray) -> tuple:
    return (source, constant.shape, constant.tobytes(), phases.tobytes(), projectors.tobytes())


class GroupCollector:
    """Sorts a circuit's symbolic gates into :class:`SymbolicGroup` families, in circuit order.

    Every exact strategy (tensor network, state vector) needs the same grouping, so that each
    family's matrices come from one batched einsum and both strategies evaluate identical numbers.
    """

    def __init__(self, weight_symbols: tuple[sympy.Symbol, ...], data_symbols: tuple[sympy.Symbol, ...]) -> None:
        self.symbols = {s: ("weights", i) for i, s in enumerate(weight_symbols)}
        self.symbols.update({s: ("data", i) for i, s in enumerate(data_symbols)})
        self.groups: list[SymbolicGroup] = []
        self._by_key: dict[tuple, int] = {}

    def add(self, gate: cirq.Gate) -> tuple[int, int]:
        """(group, position within the group) of one symbolic gate; opens a new group for a new family."""
        constant, phases, projectors, exponent = eigen_decomposition(gate)
        source, index, slope, offset = affine_exponent(exponent, self.symbols)
        key = group_key(source, constant, phases, projectors)
        if key not in self._by_key:
            self._by_key[key] = len(self.groups)
            self.groups.append(SymbolicGroup(source, constant, phases, projectors))
        g = self._by_key[key]
        group = self.groups[g]
        group.symbol_index.append(index)
        group.scale.append(slope)
        group.offset.append(offset)
        return g, len(group.symbol_index) - 1
