"""Benchmark the QPA circuit simulation: quimb backend vs the best plain-torch state vector vs cirq.

The plain-torch reference is deliberately strong (it is "the practical limit" for this circuit):
RY layers are applied as Kronecker blocks of up to 4 qubits, each one GEMM on a transposed view so
the qubit order rotates and no separate permute is needed; the first layer acting on |0..0> is
built directly as an outer product; each CNOT ladder is one precomputed gather (a prefix-XOR
permutation of basis indices). All timings: median forward+backward (cirq: forward only) with
torch.set_num_threads(1).

    python tools/bench_generator.py                 # N = 8, 12, 16, L = 8
    python tools/bench_generator.py --qubits 8 12 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cirq
import numpy as np
import torch

from qcompress.backends.absorption import kron_all
from qcompress.backends.base import basis_bits
from qcompress.backends.quimb_backend import QuimbBackend
from qcompress.circuits import build_ansatz, init_weights


def ry_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) real RY(theta) matrices."""
    cos, sin = torch.cos(angles / 2), torch.sin(angles / 2)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


class Permute(torch.autograd.Function):
    """x[perm] whose backward is the inverse gather, not the scatter-add autograd would use."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, perm: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.inverse = inverse
        return x[perm]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad[ctx.inverse], None, None


class StateVectorQPA:
    """Plain-torch simulation of the QPA ansatz (real amplitudes), tuned for speed."""

    def __init__(self, n_qubits: int, depth: int, block: int = 4) -> None:
        self.n, self.depth = n_qubits, depth
        self.blocks = [min(block, n_qubits - start) for start in range(0, n_qubits, block)]
        bits = basis_bits(n_qubits)
        prefix_xor = torch.cumsum(bits, dim=1) % 2  # CNOT ladder: y_k = x_0 ^ ... ^ x_k
        image = (prefix_xor * 2 ** torch.arange(n_qubits - 1, -1, -1)).sum(1)
        self.inverse = image  # grad_old[x] = grad_new[y(x)]
        self.gather = torch.empty_like(image)
        self.gather[image] = torch.arange(2**n_qubits)  # new_state[y] = old_state[x(y)]

    def _layer_krons(self, mats: torch.Tensor) -> list[list[torch.Tensor]]:
        """For layers 1.., the (2^b, 2^b) Kronecker block of each qubit block, built batched per block size."""
        starts = [sum(self.blocks[:i]) for i in range(len(self.blocks))]
        by_size: dict[int, list[int]] = {}
        for i, size in enumerate(self.blocks):
            by_size.setdefault(size, []).append(i)
        built: dict[int, torch.Tensor] = {}
        for size, members in by_size.items():
            picked = torch.stack([mats[1:, starts[i] : starts[i] + size] for i in members], 1)  # (L-1, B, size, 2, 2)
            krons = kron_all(picked)
            for j, i in enumerate(members):
                built[i] = krons[:, j]
        return [[built[i][layer] for i in range(len(self.blocks))] for layer in range(self.depth - 1)]

    def amplitudes(self, theta: torch.Tensor) -> torch.Tensor:
        mats = ry_matrices(theta.reshape(self.depth, self.n))
        krons = self._layer_krons(mats)
        state = mats[0, 0, :, 0]
        for q in range(1, self.n):
            state = (state[:, None] * mats[0, q, :, 0][None, :]).reshape(-1)
        state = Permute.apply(state, self.gather, self.inverse)
        for layer_krons in krons:
            for size, kron in zip(self.blocks, layer_krons):
                # rows of the view are the block's qubits (most significant); the product is stored
                # with that block least significant, which rotates qubit order by `size`
                state = (state.view(2**size, -1).t() @ kron.t()).reshape(-1)
            state = Permute.apply(state, self.gather, self.inverse)
        return state

    def probabilities(self, theta: torch.Tensor) -> torch.Tensor:
        amplitudes = self.amplitudes(theta)
        return amplitudes * amplitudes


def interleaved_medians(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median ms of each step, running them round-robin so background load hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(warmup + repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if round_ >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in samples.items()}


def forward_backward(probabilities: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, probe: torch.Tensor):
    def step() -> None:
        theta.grad = None
        (probabilities(theta) * probe).sum().backward()

    return step


def bench_one(n_qubits: int, depth: int, repeats: int, cirq_repeats: int) -> dict:
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=depth)
    theta = init_weights(ansatz, seed=0).requires_grad_()
    probe = torch.randn(2**n_qubits, generator=torch.Generator().manual_seed(0))

    reference = StateVectorQPA(n_qubits, depth)
    compiled = QuimbBackend().compile(ansatz)
    start = time.perf_counter()
    quimb_probs = compiled.probabilities(theta)  # first call: tree search (or load from disk)
    first_call_s = time.perf_counter() - start
    error = (quimb_probs - reference.probabilities(theta)).abs().max().item()

    simulator = cirq.Simulator(dtype=np.complex64)
    resolver = cirq.ParamResolver(dict(zip(ansatz.weight_symbols, theta.tolist())))
    trained = interleaved_medians(
        {
            "torch_sv_ms": forward_backward(reference.probabilities, theta, probe),
            "quimb_ms": forward_backward(compiled.probabilities, theta, probe),
        },
        repeats,
    )
    cirq_ms = interleaved_medians(
        {"cirq_forward_ms": lambda: simulator.simulate(ansatz.circuit, param_resolver=resolver, qubit_order=ansatz.qubits)},
        cirq_repeats,
    )
    return {
        "n_qubits": n_qubits,
        "depth": depth,
        **trained,
        **cirq_ms,
        "quimb_first_call_s": first_call_s,
        "max_abs_diff_vs_torch_sv": error,
    }


def print_table(rows: list[dict]) -> None:
    header = f"{'N':>3} {'L':>3} {'torch SV':>10} {'quimb':>10} {'cirq fwd':>10} {'quimb/SV':>9} {'cirq/quimb':>10} {'1st call':>9} {'max|dp|':>8}"
    print("forward+backward median, ms (cirq: forward only); 1 torch thread")
    print(header)
    for r in rows:
        print(
            f"{r['n_qubits']:>3} {r['depth']:>3} {r['torch_sv_ms']:>10.2f} {r['quimb_ms']:>10.2f} "
            f"{r['cirq_forward_ms']:>10.2f} {r['quimb_ms'] / r['torch_sv_ms']:>9.2f} "
            f"{r['cirq_forward_ms'] / r['quimb_ms']:>10.2f} {r['quimb_first_call_s']:>8.2f}s "
            f"{r['max_abs_diff_vs_torch_sv']:>8.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[8, 12, 16], help="circuit widths N")
    parser.add_argument("--depth", type=int, default=8, help="circuit blocks L")
    parser.add_argument("--repeats", type=int, default=50, help="timed forward+backward runs per simulator")
    parser.add_argument("--cirq-repeats", type=int, default=10, help="timed cirq.Simulator runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [bench_one(n, args.depth, args.repeats, args.cirq_repeats) for n in args.qubits]
    print_table(rows)
    if args.json:
        payload = {"torch": torch.__version__, "cirq": cirq.__version__, "cpu_count": os.cpu_count(), "results": rows}
        with tempfile.NamedTemporaryFile("w", dir=args.json.parent or ".", delete=False, suffix=".tmp") as handle:
            json.dump(payload, handle, indent=2)
        Path(handle.name).replace(args.json)
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
