"""Generator suite: the QPA circuit's forward+backward time in quimb vs the reference and the peers.

For each width N (depth L fixed) every available simulator computes the same circuit's basis
probabilities at the same angles; the step timed is probabilities -> a fixed random linear
functional -> backward (cirq.Simulator: forward only, it has no autograd). Steps are interleaved
round-robin within one process and summarised as medians; ratios are to the fastest
forward+backward simulator at that N. Each simulator's probabilities are checked against the
plain-torch reference, so a fast wrong answer cannot win. The quimb backend runs on ``--device``
like every other contender (its constants are buffers moved by ``.to``), once as the default and
once per exact strategy, so the table shows which strategy the default should pick at each width.

A slow simulator is capped rather than allowed to dominate the run: a step slower than
``max_step_s`` is skipped at that N and every larger N (the report says so), and otherwise its
repeats are cut to fit ``budget_s``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common import environment, new_figure, save_png, interleaved_medians, markdown_table, write_suite
from peers import Probabilities, cirq_probabilities, pennylane_probabilities, torchquantum_probabilities, unavailable
from qcompress.backends.quimb_backend import QuimbBackend
from qcompress.circuits import build_ansatz, init_weights
from qcompress.circuits.base import Ansatz
from statevector import StateVectorQPA

REFERENCE = "torch_sv"
PACKAGES = ["torch", "quimb", "cotengra", "cirq-core", "pennylane", "torchquantum"]


@dataclass(frozen=True)
class Simulator:
    """One contender: how to build its probability function, whether it can backprop, what it needs."""

    name: str
    label: str
    build: Callable[[Ansatz, str], Probabilities]
    backward: bool = True
    module: str | None = None  # a peer's import; None = part of qcompress's own dependencies
    on_device: bool = True  # False: always runs on the CPU whatever --device says


def state_vector_probabilities(ansatz: Ansatz, device: str) -> Probabilities:
    """The QPA-specific plain-torch reference at this ansatz's N and L."""
    depth = len(ansatz.weight_symbols) // ansatz.n_qubits
    return StateVectorQPA(ansatz.n_qubits, depth, device=device).probabilities


def backend_probabilities(strategy: str) -> Callable[[Ansatz, str], Probabilities]:
    """The quimb backend with ``strategy`` ('auto' is the default), its constants moved to the device like a
    generator's (compiled circuits are modules whose precomputed constants are buffers)."""

    def build(ansatz: Ansatz, device: str) -> Probabilities:
        return QuimbBackend(strategy=strategy).compile(ansatz).to(device).probabilities

    return build


SIMULATORS = [
    Simulator(REFERENCE, "plain-torch state vector (QPA-specific)", state_vector_probabilities),
    Simulator("quimb", "qcompress quimb backend (default: strategy picked per width and device)", backend_probabilities("auto")),
    Simulator("quimb_network", "qcompress quimb backend, tensor-network strategy", backend_probabilities("network")),
    Simulator("quimb_statevector", "qcompress quimb backend, state-vector strategy", backend_probabilities("statevector")),
    Simulator("torchquantum", "TorchQuantum", torchquantum_probabilities, module="torchquantum"),
    Simulator("pennylane", "PennyLane default.qubit, backprop", pennylane_probabilities, module="pennylane"),
    Simulator("cirq", "cirq.Simulator (forward only)", lambda a, d: cirq_probabilities(a), backward=False, on_device=False),
]


def timed_step(probabilities: Probabilities, theta: torch.Tensor, probe: torch.Tensor, backward: bool) -> Callable[[], None]:
    """probabilities -> <probe, p> -> backward (or forward only), the generator's hot path without the MLP."""

    def step() -> None:
        theta.grad = None
        if backward:
            (probabilities(theta).to(probe) * probe).sum().backward()
        else:
            with torch.no_grad():
                probabilities(theta)

    return step


def bench_width(n_qubits: int, depth: int, simulators: list[Simulator], device: str, repeats: int,
                max_step_s: float, budget_s: float) -> dict[str, dict[str, Any]]:
    """Results at one N: per simulator its median ms, repeats, setup time and max |p - p_reference|."""
    ansatz = build_ansatz("qpa", n_qubits=n_qubits, depth=depth)
    angles = init_weights(ansatz, seed=0)
    probe = torch.randn(2**n_qubits, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = StateVectorQPA(n_qubits, depth).probabilities(angles.double()).detach()
    results: dict[str, dict[str, Any]] = {}
    steps: dict[str, Callable[[], None]] = {}
    counts: dict[str, int] = {}
    for sim in simulators:
        where = device if sim.on_device else "cpu"
        theta = angles.clone().to(where).requires_grad_(sim.backward)  # its own leaf: .to() may alias
        start = time.perf_counter()
        probabilities = sim.build(ansatz, where)
        first = probabilities(theta)  # first call: tree search, tracing, compilation
        setup_s = time.perf_counter() - start
        error = (first.detach().cpu().double() - reference).abs().max().item()
        step = timed_step(probabilities, theta, probe.to(where), sim.backward)
        start = time.perf_counter()
        step()
        one_step_s = time.perf_counter() - start
        results[sim.name] = {"setup_s": setup_s, "max_abs_diff_vs_reference": error, "device": where,
                             "backward": sim.backward}
        if one_step_s > max_step_s:
            results[sim.name]["skipped"] = f"one step took {one_step_s:.1f} s > the {max_step_s:g} s cap"
            continue
        steps[sim.name] = step
        counts[sim.name] = max(3, min(repeats, int(budget_s / max(one_step_s, 1e-9))))
    for name, ms in interleaved_medians(steps, counts).items():
        results[name].update(ms=ms, repeats=counts[name])
    return results


def run(out_dir: Path, qubits: list[int], depth: int, device: str, repeats: int, max_step_s: float,
        budget_s: float, threads: int) -> dict[str, Any]:
    """Run the suite, print the table and write generator.{json,md,png} into ``out_dir``."""
    torch.set_num_threads(threads)
    missing = {s.name: reason for s in SIMULATORS if s.module and (reason := unavailable(s.module))}
    active = [s for s in SIMULATORS if s.name not in missing]
    rows: list[dict[str, Any]] = []
    dropped: dict[str, str] = {}
    for n in sorted(qubits):
        dropped.update(predicted_over_cap(rows[-1] if rows else None, n, max_step_s))
        simulators = [s for s in active if s.name not in dropped]
        results = bench_width(n, depth, simulators, device, repeats, max_step_s, budget_s)
        for name, result in results.items():
            if "skipped" in result:
                dropped[name] = f"skipped from N={n}: {result['skipped']}"
        rows.append({"n_qubits": n, "depth": depth, "results": results})
        print(f"N={n}: " + ", ".join(f"{k} {v['ms']:.1f} ms" for k, v in results.items() if "ms" in v), flush=True)
    add_ratios(rows)
    payload = {
        "suite": "generator",
        "what": "median ms of probabilities -> linear functional -> backward (cirq: forward only)",
        "settings": {"qubits": sorted(qubits), "depth": depth, "device": device, "threads": threads, "repeats": repeats,
                     "max_step_s": max_step_s, "budget_s": budget_s},
        "simulators": {s.name: s.label for s in SIMULATORS},
        "not_installed": missing,
        "skipped": dropped,
        "environment": environment(PACKAGES),
        "rows": rows,
    }
    markdown = render(payload)
    print(markdown)
    paths = write_suite(out_dir, "generator", payload, markdown)
    plot(payload, out_dir / "generator.png")
    print("wrote " + ", ".join(map(str, [*paths, out_dir / "generator.png"])))
    return payload


def predicted_over_cap(previous: dict[str, Any] | None, n: int, max_step_s: float) -> dict[str, str]:
    """Simulators whose step, scaled from the previous N by the state size 2^dN, would exceed the cap.

    Measuring one step just to learn it is over the cap can cost a minute at N = 20 (PennyLane);
    a state-vector simulator's cost grows at least as fast as the state, so the estimate is a floor.
    """
    if previous is None:
        return {}
    growth = 2 ** (n - previous["n_qubits"])
    return {
        name: f"skipped from N={n}: predicted {growth * r['ms'] / 1e3:.1f} s per step "
              f"(2^{n - previous['n_qubits']} x its N={previous['n_qubits']} time) > the {max_step_s:g} s cap"
        for name, r in previous["results"].items()
        if "ms" in r and growth * r["ms"] / 1e3 > max_step_s
    }


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each timed result's ratio to the fastest forward+backward simulator at the same N."""
    for row in rows:
        timed = {k: v["ms"] for k, v in row["results"].items() if "ms" in v and v["backward"]}
        fastest = min(timed.values(), default=math.nan)
        for result in row["results"].values():
            if "ms" in result:
                result["ratio_to_fastest"] = result["ms"] / fastest


def render(payload: dict[str, Any]) -> str:
    """Markdown: times, ratios, the two claims checked per N, and why any simulator is missing."""
    rows, names = payload["rows"], list(payload["simulators"])
    header = ["simulator", *(f"N={r['n_qubits']}" for r in rows)]

    def cells(key: str, fmt: str) -> list[list[Any]]:
        table = []
        for name in names:
            if name in payload["not_installed"]:
                continue
            line = [payload["simulators"][name]]
            for row in rows:
                result = row["results"].get(name, {})
                line.append(format(result[key], fmt) if key in result else "skipped")
            table.append(line)
        return table

    s = payload["settings"]
    text = [f"## Generator: QPA circuit forward+backward (L = {s['depth']}, {s['threads']} torch thread(s), "
            f"device {s['device']}), median ms\n", markdown_table(header, cells("ms", ".2f")),
            "\n### Ratio to the fastest forward+backward simulator at each N\n", markdown_table(header, cells("ratio_to_fastest", ".2f")),
            "\n### Max |p - p_reference| (float64 reference)\n", markdown_table(header, cells("max_abs_diff_vs_reference", ".1e")),
            "\n### First call, s (build + first evaluation: quimb's contraction-tree search or cache load)\n",
            markdown_table(header, cells("setup_s", ".2f")),
            "\n### Claims checked\n", *claims(rows, set(payload["skipped"])), "\n"]
    for name, reason in {**payload["not_installed"], **payload["skipped"]}.items():
        text.append(f"- {payload['simulators'][name]}: {reason}\n")
    return "".join(text)


def claims(rows: list[dict[str, Any]], over_cap: set[str]) -> list[str]:
    """Per N: is quimb ahead of each peer (a peer dropped for exceeding the cap counts as behind), within 2x
    of the plain-torch reference and within 2x of the fastest forward+backward simulator?"""
    lines = []
    for row in rows:
        results = row["results"]
        quimb = results.get("quimb", {}).get("ms")
        if quimb is None:
            continue
        facts = []
        for peer in ("torchquantum", "pennylane"):
            ms = results.get(peer, {}).get("ms")
            if ms is not None:
                facts.append(f"ahead of {peer}: {'yes' if quimb < ms else 'NO'} ({ms / quimb:.1f}x)")
            elif peer in over_cap:
                facts.append(f"ahead of {peer}: yes ({peer} skipped: over the step cap)")
        sv = results.get(REFERENCE, {}).get("ms")
        if sv is not None:
            facts.append(f"within 2x of the state vector: {'yes' if quimb <= 2 * sv else 'NO'} ({quimb / sv:.2f}x)")
        ratio = results["quimb"].get("ratio_to_fastest")
        if ratio is not None:
            facts.append(f"within 2x of the fastest: {'yes' if ratio <= 2 else 'NO'} ({ratio:.2f}x)")
        lines.append(f"- N={row['n_qubits']}: " + "; ".join(facts) + "\n")
    return lines


def plot(payload: dict[str, Any], path: Path) -> None:
    """Time against N on a log scale, one line per simulator."""
    figure, axes = new_figure()
    for name, label in payload["simulators"].items():
        points = [(r["n_qubits"], r["results"][name]["ms"]) for r in payload["rows"] if "ms" in r["results"].get(name, {})]
        if points:
            axes.plot(*zip(*points), marker="o", label=label)
    axes.set_yscale("log")
    axes.set_xlabel("qubits N")
    axes.set_ylabel("median ms per step")
    axes.set_title(f"QPA circuit, L = {payload['settings']['depth']}: forward+backward")
    axes.grid(True, which="both", alpha=0.3)
    if axes.lines:
        axes.legend(fontsize=8)
    save_png(figure, path)
