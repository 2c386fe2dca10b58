"""The deployed form of one QTHA-adapted layer: a merged dense linear map plus a constant-gate circuit.

Collapse folds every linear piece of QTHA (both tensor trains, both MLPs, CW, the scale) into the
base weight and bias; what cannot be folded is the per-token circuit, whose input and output maps
are folded too (``encode``: x -> circuit angles, ``readout``: <Z> -> output). The trained gates are
prepared once in float64 (:meth:`~qcompress.methods.qtha_circuit.QthaStatevector.prepare`) and kept
as constants: per circuit layer the graph has the per-token encoding wall, two phase products and
one constant wall on 2^r amplitudes, all ordinary tensor operations for ONNX Runtime. Folding each
layer into one dense (2*2^r)^2 matrix instead would read 1 MB of constants per layer per token at
r = 8 (memory-bound: ~1.7x slower per generated token, measured), so the gates stay factored.
"""

from __future__ import annotations

import torch

from qcompress.methods.qtha_circuit import QthaStatevector

#: why the plain Hugging Face directory is refused for such a model (transformers would drop the circuit)
NOT_A_PLAIN_MODEL = (
    "a collapsed QTHA model keeps a per-token quantum branch that plain transformers cannot load: "
    "export it with --format onnx (ONNX Runtime runs the branch as ordinary tensor operations)"
)


class QthaDeployed(torch.nn.Module):
    """``x -> x @ weight.T + bias + circuit(x @ encode.T + encode_bias) @ readout.T``, circuit gates constant."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, encode: torch.Tensor, encode_bias: torch.Tensor,
                 readout: torch.Tensor, angles: torch.Tensor, depth: int) -> None:
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.bias = torch.nn.Parameter(bias, requires_grad=False)
        self.register_buffer("encode", encode)
        self.register_buffer("encode_bias", encode_bias)
        self.register_buffer("readout", readout)
        self.circuit = QthaStatevector(encode.shape[0], depth)
        with torch.no_grad():  # float64 so preparing the gates costs no precision
            gates = QthaStatevector(encode.shape[0], depth).double().prepare(angles.double())
        self.n_gates = len(gates)
        for index, gate in enumerate(gates):
            self.register_buffer(f"gate_{index}", gate.float().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = torch.nn.functional.linear(x, self.encode, self.encode_bias)
        gates = [getattr(self, f"gate_{index}") for index in range(self.n_gates)]
        expectations = self.circuit.run(gates, angles.reshape(-1, angles.shape[-1])).reshape(angles.shape)
        return torch.nn.functional.linear(x, self.weight, self.bias) + expectations @ self.readout.T
