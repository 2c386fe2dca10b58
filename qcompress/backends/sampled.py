"""Measured circuits: basis probabilities estimated from K shots of a ``cirq.Sampler``, optionally noisy.

Hardware never hands back exact probabilities: it returns K measured bit-strings from a noisy
device. :class:`SamplerBackend` reproduces that in simulation (seeded ``cirq.Simulator``, or a
``cirq.DensityMatrixSimulator`` with a depolarizing channel after every gate) so a trained
generator can be collapsed from *measured* probabilities and the damage to the model quantified.
Any ``cirq.Sampler`` fits: a plugin subclasses :class:`SamplerBackend`, overrides
:meth:`SamplerBackend.sampler`, and registers the class under ``qcompress.backends``.

These backends are forward-only (sampling has no gradient); they are used after training, by
``qcompress eval/export --shots K --noise depolarizing:p`` (see :func:`measure_generators`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import cirq
import numpy as np
import torch

from qcompress.backends.base import Backend, CompiledCircuit
from qcompress.circuits.base import Ansatz
from qcompress.errors import CapabilityError, InputError, QcompressError

#: density matrices hold 4^N complex numbers: 12 qubits is 256 MB at complex128, beyond that is impractical
MAX_NOISY_QUBITS = 12
MEASUREMENT_KEY = "m"


class GateDepolarizing(cirq.NoiseModel):
    """An n-qubit depolarizing channel of strength ``p`` after every gate, on exactly that gate's qubits.

    Cirq's ``noise=cirq.depolarize(p)`` shorthand instead hits every qubit after every *moment*
    (idle qubits too), which is a different, circuit-layout-dependent error rate.
    """

    def __init__(self, p: float):
        self.p = p

    def noisy_operation(self, operation: cirq.Operation) -> Any:
        if cirq.is_measurement(operation):
            return operation
        return [operation, cirq.depolarize(self.p, n_qubits=len(operation.qubits)).on(*operation.qubits)]


def parse_noise(spec: str | None) -> float | None:
    """``'depolarizing:p'`` -> p (0 <= p <= 1); ``None`` -> None; anything else is a one-line InputError."""
    if spec is None:
        return None
    kind, _, value = spec.partition(":")
    try:
        p = float(value)
    except ValueError:
        p = -1.0
    if kind != "depolarizing" or not 0.0 <= p <= 1.0:
        raise InputError(f"--noise {spec!r} is not understood: write depolarizing:p with 0 <= p <= 1, e.g. depolarizing:0.01")
    return p


@dataclass(frozen=True)
class Measurement:
    """How probabilities are obtained: ``shots`` samples (None: exact) of a circuit with ``depolarizing`` noise."""

    backend: str = "sampled"
    shots: int | None = None
    depolarizing: float | None = None
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        """What the eval result and the export manifest record about how the weights were measured."""
        return asdict(self)


class SampledCircuit(CompiledCircuit):
    """An ansatz measured by a sampler: ``probabilities`` returns shot frequencies (or exact noisy ones)."""

    def __init__(self, ansatz: Ansatz, backend: SamplerBackend, seed: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.ansatz = ansatz
        self.n_qubits = ansatz.n_qubits
        self.backend = backend
        self.seed = seed
        self.dtype = dtype
        self.measured = ansatz.circuit + cirq.measure(*ansatz.qubits, key=MEASUREMENT_KEY)

    def _resolver(self, weights: torch.Tensor) -> cirq.ParamResolver:
        if weights.shape != (len(self.ansatz.weight_symbols),):
            raise InputError(f"weights must have shape ({len(self.ansatz.weight_symbols)},), got {tuple(weights.shape)}")
        return cirq.ParamResolver(dict(zip(self.ansatz.weight_symbols, weights.detach().double().tolist())))

    def probabilities(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        if data is not None or self.ansatz.data_symbols:
            raise CapabilityError(f"backend {self.backend.name!r} measures weight-only circuits; this ansatz takes data inputs")
        resolver = self._resolver(weights)
        shots = self.backend.shots
        if shots is None:
            return torch.from_numpy(self._exact(resolver)).to(device=weights.device, dtype=self.dtype)
        sampler = self.backend.sampler(self.seed, self.backend.noise_model())
        result = sampler.run(self.measured, param_resolver=resolver, repetitions=shots)
        # histogram folds each row of bits big-endian, i.e. qubit 0 is the most significant bit, as in CompiledCircuit
        counts = np.zeros(2**self.n_qubits)
        for index, count in result.histogram(key=MEASUREMENT_KEY).items():
            counts[index] = count
        return torch.from_numpy(counts / shots).to(device=weights.device, dtype=self.dtype)

    def _exact(self, resolver: cirq.ParamResolver) -> np.ndarray:
        """The K -> infinity limit: the diagonal of the noisy circuit's final density matrix."""
        simulator = cirq.DensityMatrixSimulator(dtype=np.complex128, noise=self.backend.noise_model())
        result = simulator.simulate(self.ansatz.circuit, param_resolver=resolver, qubit_order=self.ansatz.qubits)
        return np.clip(np.real(np.diag(result.final_density_matrix)), 0.0, None)


class SamplerBackend(Backend):
    """Estimates probabilities from ``shots`` samples; subclasses (plugins) change only :meth:`sampler`.

    Each compiled circuit gets its own seed (``seed``, ``seed + 1``, ... in compile order), so two
    generators never share one stream of shot noise and a run is reproducible given the seed.
    """

    name: ClassVar[str] = "sampled"
    differentiable: ClassVar[bool] = False

    def __init__(self, shots: int | None = None, depolarizing: float | None = None, seed: int = 0) -> None:
        if shots is not None and shots < 1:
            raise InputError(f"--shots must be at least 1, got {shots}")
        if depolarizing is not None and not 0.0 <= depolarizing <= 1.0:
            raise InputError(f"depolarizing strength must be in [0, 1], got {depolarizing}")
        self.shots = shots
        self.depolarizing = depolarizing
        self.seed = seed
        self._compiled = 0

    def noise_model(self) -> cirq.NoiseModel | None:
        return None if self.depolarizing is None else GateDepolarizing(self.depolarizing)

    def sampler(self, seed: int, noise: cirq.NoiseModel | None) -> cirq.Sampler:
        """The sampler for one circuit: a seeded state-vector simulator, or a density-matrix one when noisy."""
        if noise is None:
            return cirq.Simulator(dtype=np.complex128, seed=seed)
        return cirq.DensityMatrixSimulator(dtype=np.complex128, noise=noise, seed=seed)

    def compile(self, ansatz: Ansatz, dtype: torch.dtype = torch.float32) -> SampledCircuit:
        if self.depolarizing is not None and ansatz.n_qubits > MAX_NOISY_QUBITS:
            raise CapabilityError(
                f"--noise needs a density-matrix simulation, feasible up to {MAX_NOISY_QUBITS} qubits, but this "
                f"circuit has {ansatz.n_qubits}: use a run with fewer qubits (larger --n-mlp) or drop --noise"
            )
        seed = self.seed + self._compiled
        self._compiled += 1
        return SampledCircuit(ansatz, self, seed, dtype)

    def measurement(self) -> Measurement:
        return Measurement(self.name, self.shots, self.depolarizing, self.seed)


def measure_generators(model: torch.nn.Module, backend: SamplerBackend) -> int:
    """Make every circuit read-out in ``model`` measure its probabilities through ``backend``; returns how many.

    A read-out is any submodule holding an ``ansatz`` and a compiled ``circuit`` (each basis a QPA
    generator reads its circuit in is one); swapping the circuit keeps the trained angles and
    mapping network untouched.
    """
    found = 0
    for module in model.modules():
        if isinstance(getattr(module, "ansatz", None), Ansatz) and isinstance(getattr(module, "circuit", None), CompiledCircuit):
            module.circuit = backend.compile(module.ansatz)
            found += 1
    return found


def sampler_backend(name: str, shots: int | None, noise: str | None, seed: int) -> SamplerBackend | None:
    """The registered backend ``name`` configured for ``--shots``/``--noise`` (None when neither is given)."""
    from qcompress import registry

    if shots is None and noise is None and name == SamplerBackend.name:
        return None
    cls = registry.get("backend", name)
    if not _is_sampler(cls):
        samplers = [n for n in registry.names("backend") if _loads_a_sampler(n)]
        raise InputError(f"backend {name!r} does not measure circuits; choose one of: {', '.join(samplers)}")
    if shots is None and name != SamplerBackend.name:
        raise InputError(f"--backend {name} takes the shots for --shots K: add --shots (exact noisy probabilities use no sampler)")
    return cls(shots=shots, depolarizing=parse_noise(noise), seed=seed)


def _is_sampler(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, SamplerBackend)


def _loads_a_sampler(name: str) -> bool:
    """Whether backend ``name`` loads and is a sampler (a broken plugin must not hide the others)."""
    from qcompress import registry

    try:
        return _is_sampler(registry.get("backend", name))
    except QcompressError:
        return False


def collapse_measured(adapted: Any, method: str, backend: SamplerBackend) -> Any:
    """Collapse an adapted model (an :class:`~qcompress.methods.AdaptedModel`) from measured probabilities;
    returns its :class:`~qcompress.methods.Collapsed`."""
    if measure_generators(adapted.model, backend) == 0:
        raise InputError(f"--shots/--noise measure a circuit, but method {method!r} has none: use a run of a qpa-* method")
    return adapted.collapse()
