"""The classical ablation: the circuit replaced by a trainable vector of the same size, for a fair baseline.

A reviewer's first question about QPA is how much the quantum circuit itself contributes, as
opposed to the mapping MLP and the chunked weight generation around it. This backend answers it
by keeping everything else identical: the generator still creates its N*L "angles" from
``init_weights(ansatz)`` and trains them, but they become the input of a fixed classical map
instead of a circuit, so the parameter count, the optimiser and the MLP are unchanged.

The map is ``softmax(R @ weights)`` with R a fixed Gaussian (2^N, N*L) matrix:

* softmax lands on the probability simplex, exactly where the circuit's output lives, so the
  generator's post-processing (tanh squash, power, mean-centring) sees inputs of the same kind;
* a linear map of the N*L numbers is the least structured choice: it adds no expressiveness a
  circuit lacks beyond what any classical parametrisation of 2^N logits by N*L numbers has;
* R's scale makes the logits at the initial angles (uniform in [-pi, pi], variance pi^2/3) have
  variance ln 2, so the initial probabilities have coefficient of variation 1, the same relative
  spread as the Porter-Thomas distribution of a random circuit's probabilities.

R depends only on the shape (2^N, N*L), the basis the ansatz is read in and a fixed seed per basis,
so runs are deterministic and a
collapsed or reloaded run rebuilds the same map. It costs 2^N * N * L numbers of memory (34 MB at
N = 16, L = 8), which is fine for the N a QPA adapter uses. The map has no data inputs, so an
ansatz with data symbols (e.g. QTHA's per-token circuit) is refused. A generator that reads its
circuit in two bases gets two different maps (seeds 0 and 1), so its ablation has two independent
classical feature vectors where the circuit has two read-outs, not one vector twice.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from qcompress.backends.base import Backend, CompiledCircuit
from qcompress.circuits.base import Ansatz
from qcompress.errors import CapabilityError, InputError

PROJECTION_SEEDS = {"z": 0, "x": 1}  # per measurement basis of the ansatz stood in for
INITIAL_LOGIT_VARIANCE = math.log(2.0)  # lognormal with CV 1, like Porter-Thomas
INITIAL_WEIGHT_VARIANCE = math.pi**2 / 3.0  # of init_weights' uniform [-pi, pi] angles


def projection(n_outputs: int, n_weights: int, dtype: torch.dtype, seed: int = PROJECTION_SEEDS["z"]) -> torch.Tensor:
    """The fixed (n_outputs, n_weights) Gaussian map, scaled so initial logits have variance ln 2."""
    generator = torch.Generator().manual_seed(seed)
    scale = math.sqrt(INITIAL_LOGIT_VARIANCE / (n_weights * INITIAL_WEIGHT_VARIANCE))
    return (torch.randn(n_outputs, n_weights, generator=generator, dtype=torch.float64) * scale).to(dtype)


class ClassicalCircuit(CompiledCircuit):
    """softmax(R @ weights) over the 2^N basis states of the ansatz it stands in for."""

    def __init__(self, ansatz: Ansatz, dtype: torch.dtype) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if ansatz.data_symbols:
            raise CapabilityError(
                f"backend 'classical' has no data inputs but ansatz {ansatz.name!r} has "
                f"{len(ansatz.data_symbols)}; use --backend quimb for this method"
            )
        super().__init__()
        self.n_qubits = ansatz.n_qubits
        self.n_weights = len(ansatz.weight_symbols)
        self.register_buffer("matrix", projection(2**self.n_qubits, self.n_weights, dtype, PROJECTION_SEEDS[ansatz.basis]), persistent=False)

    def probabilities(self, weights: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        if data is not None:
            raise CapabilityError("backend 'classical' has no data inputs; use --backend quimb for data-encoding circuits")
        if weights.shape != (self.n_weights,):
            raise InputError(f"weights must have shape ({self.n_weights},), got {tuple(weights.shape)}")
        return torch.softmax(self.matrix @ weights.to(self.matrix.dtype), dim=0)


class ClassicalBackend(Backend):
    """Registered as ``classical``: the ablation of QPA's circuit, differentiable like quimb."""

    name: ClassVar[str] = "classical"
    differentiable: ClassVar[bool] = True
    simulates_circuit: ClassVar[bool] = False

    def compile(self, ansatz: Ansatz, dtype: torch.dtype = torch.float32) -> ClassicalCircuit:
        return ClassicalCircuit(ansatz, dtype)
