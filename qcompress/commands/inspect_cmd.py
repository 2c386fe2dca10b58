"""``qcompress inspect``: what a QPA generator configuration amounts to, before training it.

Prints qubits, chunking and the trainable-versus-generated parameter counts, optionally the Cirq
diagram and a timing of one forward+backward pass. Heavy libraries load inside the command.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any, Optional

import typer

from qcompress.errors import InputError


def parse_widths(text: str) -> tuple[int, ...]:
    """'32,64,128' -> (32, 64, 128); '' or 'none' -> () (a single linear map)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--hidden must be comma-separated integers like '32,64,128', got {text!r}") from None


def time_generator(generator: Any, repeats: int) -> dict[str, Any]:
    """Median wall time of one generator call (+ backward when the backend is differentiable), after a warm-up."""
    import torch

    trains = generator.backend.differentiable
    samples = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        if trains:
            generator.zero_grad(set_to_none=True)
            generator().square().sum().backward()
        else:
            with torch.no_grad():
                generator()
        samples.append(time.perf_counter() - start)
    return {"pass": "forward+backward" if trains else "forward", "median_ms": 1e3 * statistics.median(samples[1:])}


def summary(generator: Any) -> dict[str, Any]:
    """The counts a user weighs before training: one dict, so the table and --json cannot disagree."""
    circuit_params = generator.angles.numel()
    trainable = generator.trainable_parameters()
    return {
        "n_qubits": generator.n_qubits,
        "depth": generator.config.depth,
        "n_mlp": generator.config.n_mlp,
        "n_chunks": generator.n_chunks,
        "basis_states": 2**generator.n_qubits,
        "generated_weights": generator.n_weights,
        "trainable_parameters": trainable,
        "circuit_parameters": circuit_params,
        "mlp_parameters": trainable - circuit_params,
        "compression_ratio": generator.n_weights / trainable,
        "backend": generator.config.backend,
        "ansatz": generator.config.ansatz,
    }


def print_summary(info: dict[str, Any]) -> None:
    """Aligned two-column table of :func:`summary` (plus timing when measured)."""
    rows = [
        ("qubits N", f"{info['n_qubits']}"),
        ("depth L", f"{info['depth']}"),
        ("n_mlp (weights per chunk)", f"{info['n_mlp']:,}"),
        ("chunks", f"{info['n_chunks']:,} of {info['basis_states']:,} basis states"),
        ("generated weights", f"{info['generated_weights']:,}"),
        (
            "trainable parameters",
            f"{info['trainable_parameters']:,} (circuit {info['circuit_parameters']:,} + MLP {info['mlp_parameters']:,})",
        ),
        ("compression ratio", f"{info['compression_ratio']:.3g}x (generated / trainable)"),
        ("backend / ansatz", f"{info['backend']} / {info['ansatz']}"),
    ]
    if "timing" in info:
        timing = info["timing"]
        rows.append((f"time ({timing['pass']})", f"{timing['median_ms']:.2f} ms (median, {timing['threads']} threads)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect(
        weights: Optional[int] = typer.Option(
            None, "--weights", "--target-weights", "-m", help="Number of adapter weights M the generator must produce (required)."
        ),
        n_mlp: int = typer.Option(2048, "--n-mlp", help="Weights produced per basis state (chunk size); chunks = ceil(M / n_mlp)."),
        depth: int = typer.Option(8, "--depth", "-L", help="Circuit blocks L (each: RY on every qubit + CNOT ladder)."),
        hidden: str = typer.Option("32,64,128,128,64,32", "--hidden", help="Mapping-MLP hidden widths, comma-separated ('none' for a single linear map)."),
        activation: str = typer.Option("none", "--activation", help="Activation between MLP layers: none, relu, gelu, tanh, silu, sigmoid, leaky_relu."),
        backend: str = typer.Option("quimb", "--backend", help="Simulator: quimb (exact, differentiable) or cirq (forward-only reference)."),
        ansatz: str = typer.Option("qpa", "--ansatz", help="Registered circuit ansatz name."),
        seed: int = typer.Option(0, "--seed", help="Seed for circuit angles and MLP initialisation."),
        diagram: bool = typer.Option(False, "--diagram", help="Also print the circuit as a Cirq text diagram."),
        timing: bool = typer.Option(False, "--time", help="Also time one generator pass (median of 5; forward+backward when trainable)."),
        threads: Optional[int] = typer.Option(
            None, "--threads", min=1, help="torch CPU threads for --time (default: torch's own choice; 1 is often fastest for small circuits)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table (for scripts)."),
    ) -> None:
        """Show a QPA generator's qubits, chunking, parameter counts and compression (optionally diagram and timing)."""
        if weights is None:
            raise InputError("missing --weights M: the number of adapter weights to generate (e.g. --weights 460800)")
        import torch

        from qcompress.config import validated
        from qcompress.generators.qpa import QPAGenerator, QPAGeneratorConfig

        config = validated(
            QPAGeneratorConfig,
            {"n_mlp": n_mlp, "depth": depth, "hidden": parse_widths(hidden), "activation": activation,
             "backend": backend, "ansatz": ansatz, "seed": seed},
            "generator options",
        )
        generator = QPAGenerator(weights, config)
        info = summary(generator)
        if timing:
            if threads is not None:
                torch.set_num_threads(threads)
            info["timing"] = {**time_generator(generator, repeats=5), "threads": torch.get_num_threads()}
        if diagram:
            info["diagram"] = generator.circuit_diagram()
        if as_json:
            typer.echo(json.dumps(info, indent=2))
            return
        print_summary(info)
        if diagram:
            typer.echo("")
            typer.echo(info["diagram"])
