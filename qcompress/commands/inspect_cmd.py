"""``qcompress inspect``: what an adapter configuration amounts to, before training it.

Two views. ``--weights M`` describes a QPA generator on its own: qubits, chunking and the
trainable-versus-generated parameter counts, optionally the Cirq diagram and a timing of one
forward+backward pass. ``--method NAME`` attaches that method to a base model exactly as ``fit``
would and prints what ``fit`` records in ``circuit.txt`` (for QTHA: the circuit, the tensor-train
shapes and the counts against LoRA at the same rank). Heavy libraries load inside the command.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Optional

import typer

from qcompress.commands.options import config_overrides, method_options_option, override_flags
from qcompress.config import MAX_SEED
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
    timed = [1e3 * sample for sample in samples[1:]]  # the warm-up call is not one of them
    return {"pass": "forward+backward" if trains else "forward", "median_ms": statistics.median(timed), "samples_ms": timed}


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
        "readout": generator.config.readout,
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
        ("backend / ansatz / read in", f"{info['backend']} / {info['ansatz']} / {info['readout']}"),
    ]
    if "timing" in info:
        timing = info["timing"]
        rows.append((f"time ({timing['pass']})", f"{timing['median_ms']:.2f} ms (median, {timing['threads']} threads)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")


def describe_method(config_file: Path | None, flags: dict[str, Any], method_options: list[str], as_json: bool) -> None:
    """Attach a method to its base model as ``fit`` would (same config rules) and print what it amounts to."""
    from qcompress.methods import get_method
    from qcompress.models import load_model
    from qcompress.training.config import build_fit_config

    config = build_fit_config(config_file, config_overrides(flags, method_options), override_flags(flags))
    loaded = load_model(config.model)
    adapted = get_method(config.method).attach(loaded.model, config)
    counts = adapted.counts()
    if as_json:
        typer.echo(json.dumps({"method": config.method, "model": config.model, "counts": counts,
                               "fraction_of_lora": counts["trainable"] / counts["lora_equivalent"],
                               "description": adapted.describe()}, indent=2))
        return
    typer.echo(adapted.describe().rstrip("\n"))
    typer.echo(f"trainable {counts['trainable']:,} = {100 * counts['trainable'] / counts['lora_equivalent']:.1f}% "
               f"of LoRA r={config.adapter.rank} ({counts['lora_equivalent']:,}) on {config.model}")


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect(
        weights: Optional[int] = typer.Option(
            None, "--weights", "--target-weights", "-m", help="Number of adapter weights M the generator must produce (required)."
        ),
        n_mlp: Optional[int] = typer.Option(None, "--n-mlp", help="Weights produced per basis state (chunk size); chunks = ceil(M / n_mlp). Default: the generator's, as for fit."),
        depth: Optional[int] = typer.Option(None, "--depth", "-L", help="Circuit blocks L (each: RY on every qubit + CNOT ladder). Default: as for fit."),
        hidden: Optional[str] = typer.Option(None, "--hidden", help="Mapping-MLP hidden widths, comma-separated ('none' for a single linear map). Default: as for fit."),
        activation: Optional[str] = typer.Option(None, "--activation", help="Activation between MLP layers: none, relu, gelu, tanh, silu, sigmoid, leaky_relu. Default: as for fit."),
        backend: Optional[str] = typer.Option(None, "--backend", help="Simulator: quimb (exact, differentiable) or cirq (forward-only reference). Default: as for fit."),
        ansatz: Optional[str] = typer.Option(None, "--ansatz", help="Registered circuit ansatz: qpa (RY + CNOT, the paper's), ry-rz, or a plugin's. Default: as for fit."),
        readout: Optional[str] = typer.Option(None, "--readout", help="Bases the circuit is read in, '+'-joined: z (the paper's) or z+x (two probabilities per chunk). Default: as for fit."),
        seed: Optional[int] = typer.Option(None, "--seed", min=0, max=MAX_SEED, help="Seed for circuit angles and MLP initialisation (default 0)."),
        diagram: bool = typer.Option(False, "--diagram", help="Also print the circuit as a Cirq text diagram."),
        timing: bool = typer.Option(False, "--time", help="Also time one generator pass (median of 5; forward+backward when trainable)."),
        threads: Optional[int] = typer.Option(
            None, "--threads", min=1, help="torch CPU threads for --time (default: torch's own choice; 1 is often fastest for small circuits)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table (for scripts)."),
        method: Optional[str] = typer.Option(
            None, "--method", help="Instead of a bare generator, attach this method (e.g. qtha, qpa-lora, lora) to --model and describe it."
        ),
        model: Optional[str] = typer.Option(None, "--model", help="With --method: base model, as for fit (default smollm2-135m)."),
        config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="With --method: a fit's YAML file of options (e.g. a generator variant's qpa: section); flags override it."),
        rank: Optional[int] = typer.Option(None, "--rank", help="With --method: adapter rank r (QTHA: qubits)."),
        targets: Optional[str] = typer.Option(None, "--targets", help="With --method: target modules, as for fit."),
        qtha_inner: Optional[int] = typer.Option(None, "--qtha-inner", help="With --method qtha: tensor-train inner width (default 256)."),
        qtha_bond: Optional[int] = typer.Option(None, "--qtha-bond", help="With --method qtha: tensor-train bond dimension (default 8)."),
        qtha_layers: Optional[int] = typer.Option(None, "--qtha-layers", help="With --method qtha: circuit layers L (default r)."),
        method_options: list[str] = method_options_option(),
    ) -> None:
        """Show what a QPA generator (--weights M) or an adapter method on a model (--method) amounts to: counts, circuit, shapes."""
        if method is not None:
            if weights is not None:
                raise InputError("--weights describes a bare generator and --method an adapter on a model: give one of them")
            describe_method(config_file, {
                "method": method, "model": model, "rank": rank, "targets": targets, "n_mlp": n_mlp, "depth": depth,
                "backend": backend, "qtha_inner": qtha_inner, "qtha_bond": qtha_bond, "qtha_layers": qtha_layers, "seed": seed,
            }, method_options, as_json)
            return
        if config_file is not None:
            raise InputError("--config describes a fit's options: add --method NAME to attach that method to a model")
        if weights is None:
            raise InputError(
                "missing --weights M (a bare QPA generator for M adapter weights, e.g. --weights 460800) "
                "or --method NAME (an adapter on a model, e.g. --method qtha)"
            )
        import torch

        from qcompress.config import flag_fix, validated
        from qcompress.generators.qpa import QPAGenerator, QPAGeneratorConfig

        given = {"n_mlp": n_mlp, "depth": depth, "hidden": None if hidden is None else parse_widths(hidden),
                 "activation": activation, "backend": backend, "ansatz": ansatz, "readout": readout, "seed": seed}
        # what is not given takes the generator config's own defaults, the ones fit uses
        config = validated(QPAGeneratorConfig, {key: value for key, value in given.items() if value is not None}, "generator options",
                           flag_fix(lambda field: f"--{field.replace('_', '-')}" if field in given else None))
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
