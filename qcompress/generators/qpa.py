"""The QPA generator (ICLR 2025): a quantum circuit's basis probabilities, mapped to a flat weight vector.

With N qubits the circuit has 2^N basis states; each kept state k contributes one chunk of
``n_mlp`` weights, produced by a small shared "mapping" MLP from k's bit-string and its processed
probability. So N*L circuit angles plus one small MLP stand in for ``n_weights`` adapter weights.

``readout`` may read the same state in more than one basis (``z+x``): each chunk then gets one
processed probability per basis, so the MLP sees circuit features that the Z-basis probabilities
alone discard (the amplitudes' relative signs and phases), at the cost of one more simulation.
``condition: layer`` adds where a chunk sits as an input: the index of the adapted layer its first
weight belongs to, scaled to [-1, 1], so one shared generator can make different layers differ by
more than what the bit-strings of their chunks happen to encode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import torch
from pydantic import Field, ValidationInfo, field_validator

from qcompress.backends import get_backend
from qcompress.backends.base import Backend, basis_bits
from qcompress.circuits import Ansatz, build_ansatz, init_weights
from qcompress.circuits.base import MEASUREMENT_BASES, measured_in
from qcompress.config import MAX_SEED, StrictModel
from qcompress.errors import InputError

CONDITIONS = ("none", "layer")
#: how a method maps the generated chunks onto its tensors (qcompress.methods.generated): flat, or one chunk per factor
LAYOUTS = ("flat", "factors")
ACTIVATIONS: dict[str, type[torch.nn.Module] | None] = {
    "none": None,
    "relu": torch.nn.ReLU,
    "gelu": torch.nn.GELU,
    "tanh": torch.nn.Tanh,
    "silu": torch.nn.SiLU,
    "sigmoid": torch.nn.Sigmoid,
    "leaky_relu": torch.nn.LeakyReLU,
}


# Exact state vectors of 2^24 amplitudes are the largest the simulators are benchmarked at; beyond
# that memory, not the circuit, decides (and a typo in --n-mlp should not allocate tens of GB).
MAX_QUBITS = 24
# Far beyond any published ansatz depth; a bound so a typo cannot build a circuit of 10^8 layers.
MAX_DEPTH = 1024


#: the paper's chunk size; also always allowed where the adapter has fewer weights (one chunk, part unread)
DEFAULT_N_MLP = 2048


class QPAGeneratorConfig(StrictModel):
    """Shape of the generator; defaults are the QPA paper's settings for LoRA-sized targets."""

    n_mlp: int = Field(DEFAULT_N_MLP, ge=1, description="weights produced per basis state (chunk size)")
    depth: int = Field(8, ge=1, le=MAX_DEPTH, description="circuit blocks L")
    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field((32, 64, 128, 128, 64, 32), description="mapping MLP widths")
    activation: str = Field("none", description="between MLP layers: " + "|".join(ACTIVATIONS))
    gamma: float = Field(0.1, gt=0, allow_inf_nan=False)
    beta: float = Field(0.6, gt=0, allow_inf_nan=False)
    alpha: float = Field(0.15, gt=0, allow_inf_nan=False)
    backend: str = "quimb"
    ansatz: str = "qpa"
    readout: str = Field("z", description="bases the circuit is read in, '+'-joined: z (the paper), z+x (two features per chunk)")
    condition: str = Field("none", description="extra MLP input per chunk: none (the paper) or layer (its adapted layer's position)")
    layout: str = Field("flat", description="chunks over the adapter's tensors: flat (the paper) or factors (one per rank-one factor)")
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @field_validator("activation", "condition", "layout")
    @classmethod
    def _known_choice(cls, value: str, info: ValidationInfo) -> str:
        choices = {"activation": ACTIVATIONS, "condition": CONDITIONS, "layout": LAYOUTS}[info.field_name]
        if value not in choices:
            raise ValueError(f"unknown {info.field_name} {value!r}; choose one of {'|'.join(choices)}")
        return value

    @field_validator("readout")
    @classmethod
    def _known_bases(cls, value: str) -> str:
        bases = value.split("+")
        if any(b not in MEASUREMENT_BASES for b in bases) or len(set(bases)) != len(bases):
            raise ValueError(f"readout {value!r} must join distinct bases of {'|'.join(MEASUREMENT_BASES)} with '+', e.g. z+x")
        return value

    @property
    def bases(self) -> list[str]:
        return self.readout.split("+")


def qubits_for(n_weights: int, n_mlp: int) -> tuple[int, int]:
    """(n_chunks, N): chunks needed to cover n_weights, and the fewest qubits (at least 1) with 2^N >= n_chunks."""
    if n_weights < 1:
        raise InputError(f"the generator must produce at least 1 weight, got n_weights={n_weights}")
    if n_mlp < 1:
        raise InputError(f"n_mlp must be >= 1, got {n_mlp}")
    if n_mlp > max(n_weights, DEFAULT_N_MLP):  # bounds the MLP's last layer (and its memory) by the adapter's size
        raise InputError(
            f"n_mlp={n_mlp:,} is more than the {n_weights:,} weights the generator writes (the mapping MLP would "
            f"compute outputs no tensor reads): use --n-mlp {max(n_weights, DEFAULT_N_MLP)} or less"
        )
    n_chunks = math.ceil(n_weights / n_mlp)
    n_qubits = max(1, math.ceil(math.log2(n_chunks)))
    if n_qubits > MAX_QUBITS:
        raise InputError(
            f"{n_weights:,} weights in chunks of n_mlp={n_mlp} need {n_qubits} qubits, more than the {MAX_QUBITS} "
            f"an exact simulation holds: raise --n-mlp to at least {math.ceil(n_weights / 2**MAX_QUBITS)}"
        )
    return n_chunks, n_qubits


def mapping_mlp(widths: list[int], activation: str, generator: torch.Generator) -> torch.nn.Sequential:
    """Linear layers through ``widths`` with ``activation`` between them, initialised from ``generator`` only."""
    if activation not in ACTIVATIONS:
        raise InputError(f"unknown activation {activation!r}; choose one of {'|'.join(ACTIVATIONS)}")
    layers: list[torch.nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        linear = torch.nn.Linear(fan_in, fan_out)
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's default nn.Linear range, but from our generator
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
        layers.append(linear)
        if ACTIVATIONS[activation] is not None and i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return torch.nn.Sequential(*layers)


class Readout(torch.nn.Module):
    """The circuit read in one basis: its ansatz and compiled circuit, a module of its own so that
    :func:`~qcompress.backends.sampled.measure_generators` can swap each read-out for a sampler."""

    def __init__(self, ansatz: Ansatz, backend: Backend) -> None:
        super().__init__()
        self.ansatz = ansatz
        self.circuit = backend.compile(ansatz)


def chunk_layer_positions(layer_sizes: Sequence[int], n_chunks: int, n_mlp: int) -> torch.Tensor:
    """(n_chunks, 1): the index of the layer holding each chunk's first weight, scaled to [-1, 1] (2+ layers)."""
    ends = torch.tensor(list(layer_sizes)).cumsum(0)
    layer = torch.searchsorted(ends, torch.arange(n_chunks) * n_mlp, right=True)
    return (layer.to(torch.float32) * (2.0 / (len(layer_sizes) - 1)) - 1.0).unsqueeze(1)


class QPAGenerator(torch.nn.Module):
    """Circuit angles + mapping MLP -> ``n_weights`` generated weights (flat, mean-centred).

    ``layer_sizes``: the weights of each adapted layer, in output order, for ``condition: layer``."""

    def __init__(self, n_weights: int, config: QPAGeneratorConfig, layer_sizes: Sequence[int] = ()) -> None:
        super().__init__()
        if config.depth < 1:
            raise InputError(f"depth must be >= 1, got {config.depth}")
        self.config = config
        self.n_weights = n_weights
        self.n_chunks, self.n_qubits = qubits_for(n_weights, config.n_mlp)
        self.ansatz = build_ansatz(config.ansatz, n_qubits=self.n_qubits, depth=config.depth)
        self.backend = get_backend(config.backend)
        self.readouts = torch.nn.ModuleList(Readout(measured_in(self.ansatz, b), self.backend) for b in config.bases)
        self.angles = torch.nn.Parameter(init_weights(self.ansatz, config.seed))
        generator = torch.Generator().manual_seed(config.seed)
        signs = 2.0 * basis_bits(self.n_qubits)[: self.n_chunks].to(torch.float32) - 1.0
        if config.condition == "layer":
            if sum(layer_sizes) != n_weights:
                raise InputError(
                    f"condition 'layer' needs the sizes of the adapted layers ({sum(layer_sizes)} weights given for "
                    f"{n_weights}): use it through a method (fit, inspect --method), or condition: none"
                )
            if len(layer_sizes) < 2:  # every chunk's input would be the same constant: weights that never train
                raise InputError(
                    "condition 'layer' tells one generator's chunks apart by layer, but this generator serves one "
                    "layer: use generator_scope: shared, or condition: none"
                )
            signs = torch.cat([signs, chunk_layer_positions(layer_sizes, self.n_chunks, config.n_mlp)], dim=1)
        # every input of a chunk that does not come from the circuit: its bit-string, then (optionally) its layer
        self.register_buffer("chunk_inputs", signs, persistent=False)
        widths = [signs.shape[1] + len(self.readouts), *config.hidden, config.n_mlp]
        self.mlp = mapping_mlp(widths, config.activation, generator)

    def trainable_parameters(self) -> int:
        """Exact count of trained numbers: N*L angles plus every MLP weight and bias."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def probabilities(self) -> torch.Tensor:
        """Raw (bases, 2^N) basis probabilities of the circuit at the current angles, one row per read-out."""
        return torch.stack([readout.circuit.probabilities(self.angles) for readout in self.readouts])

    def forward(self) -> torch.Tensor:
        cfg = self.config
        probs = self.probabilities()
        squashed = cfg.beta * torch.tanh(cfg.gamma * 2 ** (self.n_qubits - 1) * probs)
        # x**alpha (alpha < 1) has an infinite slope at 0; an exactly-zero probability would turn
        # every gradient into NaN, so the base is kept at least at the dtype's smallest normal number
        scaled = squashed.clamp_min(torch.finfo(squashed.dtype).tiny) ** cfg.alpha
        scaled = (scaled - scaled.mean(dim=1, keepdim=True))[:, : self.n_chunks]
        features = torch.cat([self.chunk_inputs, scaled.T], dim=1)
        weights = self.mlp(features).reshape(-1)[: self.n_weights]
        return weights - weights.mean()

    def circuit_diagram(self) -> str:
        """Cirq's text drawing of the ansatz, for logs and ``qcompress inspect --diagram``."""
        return self.ansatz.circuit.to_text_diagram(qubit_order=self.ansatz.qubits)
