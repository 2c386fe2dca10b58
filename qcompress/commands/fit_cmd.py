"""``qcompress fit``: train an adapter (classical or quantum-generated) and write a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from qcompress.commands.options import config_overrides, ignore_model_mismatch_option, method_options_option, override_flags


def register(app: typer.Typer) -> None:
    @app.command("fit")
    def fit_command(
        out: Path = typer.Option(..., "--out", "-o", help="Run directory to write (or to continue with --resume)."),
        config_file: Path = typer.Option(None, "--config", "-c", help="YAML file of options; flags override it."),
        model: str = typer.Option(None, help="Base model: 'smollm2-135m' (default), a local HF dir, a .gguf file, or a hub id."),
        data: str = typer.Option(None, help="Corpus: 'austen' (default), a named split (austen-train, austen-validation, austen-test, state-of-the-union), a .txt file, a folder, a .jsonl file, or a hub dataset id."),
        eval_data: str = typer.Option(None, help="Held-out text for perplexity (default: the corpus' own held-out part)."),
        method: str = typer.Option(None, help="Adapter method (default 'qpa-lora'): lora, qpa-lora, dora, qpa-dora, ffa, qpa-ffa, prefix, qpa-prefix, qtha, fourierft, vblora, ia3, tinylora; plugins add more (vera, qpa-vera)."),
        rank: int = typer.Option(None, help="LoRA rank r (default 8)."),
        alpha: float = typer.Option(None, help="LoRA alpha (default 2r)."),
        dropout: float = typer.Option(None, help="LoRA dropout (default 0)."),
        targets: str = typer.Option(None, help="Comma-separated module names, or one regex (default per architecture)."),
        n_mlp: int = typer.Option(None, "--n-mlp", help="QPA: weights per basis state (mapping-MLP output size, default 2048; at most each generator's weights or 2048)."),
        depth: int = typer.Option(None, help="QPA: circuit blocks L (default 8)."),
        backend: str = typer.Option(None, help="QPA: circuit simulator, 'quimb' (default, differentiable)."),
        zero_init: bool = typer.Option(None, "--zero-init/--no-zero-init", help="QPA: start at dW = 0 (default on)."),
        generator_scope: str = typer.Option(None, help="QPA: 'shared' generator (default) or one per 'layer'."),
        dora_magnitude: str = typer.Option(None, help="qpa-dora: magnitude vectors 'generated' (default) or 'trained'."),
        prefix_tokens: int = typer.Option(None, "--prefix-tokens", help="prefix / qpa-prefix: virtual tokens per layer (default 16)."),
        qtha_inner: int = typer.Option(None, "--qtha-inner", help="QTHA: inner width of the tensor trains (default 256)."),
        qtha_bond: int = typer.Option(None, "--qtha-bond", help="QTHA: tensor-train bond dimension (default 8)."),
        qtha_layers: int = typer.Option(None, "--qtha-layers", help="QTHA: circuit layers L (default r)."),
        method_options: list[str] = method_options_option(),
        steps: int = typer.Option(None, help="Optimizer steps (default 100)."),
        decay_to_init: float = typer.Option(None, "--decay-to-init", help="Pull every trained tensor back toward its initial value by lr x this per step, i.e. the update toward dW = 0 (default 0: off)."),
        lr: float = typer.Option(None, help="Peak learning rate (default: the method's own, e.g. lora 3e-3, qpa-lora 3e-3)."),
        batch_size: int = typer.Option(None, help="Blocks per micro-batch (default 4)."),
        grad_accum: int = typer.Option(None, help="Micro-batches per step (default 1)."),
        seq_len: int = typer.Option(None, help="Tokens per training block (default 128, or the model's context if shorter)."),
        seed: int = typer.Option(None, help="Seed of data order, dropout and generator init (default 0)."),
        eval_every: int = typer.Option(None, help="Steps between held-out evaluations (default 50; 0 = end only)."),
        eval_tokens: int = typer.Option(None, help="Held-out tokens scored (default 8192)."),
        eval_seq_len: int = typer.Option(None, help="Evaluation window in tokens (default 256, or the model's context if shorter)."),
        eval_stride: int = typer.Option(None, help="Evaluation window advance (default half the window)."),
        threads: int = typer.Option(None, help="torch CPU threads (default: all cores)."),
        device: str = typer.Option(None, help="torch device: auto (default: a GPU when present, else CPU), cpu, cuda, cuda:N, mps."),
        precision: str = typer.Option(None, help="Base model's compute precision: fp32 (default), bf16 (bfloat16 base weights + autocast), fp16 (autocast + loss scaling). Circuits, generators and trained tensors stay float32."),
        gradient_checkpointing: bool = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations in the backward pass: less memory, ~30% more time (default off)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint (from step 0 if it has none), with its recorded config; only --threads and --device may change."),
        force: bool = typer.Option(False, "--force", help="Replace the run in --out (only a qcompress run, and only once the new one is complete)."),
        ignore_model_mismatch: bool = ignore_model_mismatch_option("With --resume: train"),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    ) -> None:
        """Fine-tune a causal LM with a classical, QPA-generated or QTHA adapter; writes RUN_DIR (config, trained state, metrics, plot).

        Several processes: `torchrun --nproc_per_node N -m qcompress.cli fit ...` or
        `accelerate launch --num_processes N -m qcompress.cli fit ...` trains data-parallel
        (--batch-size is the global batch; rank 0 writes the run)."""
        from qcompress.errors import InputError
        from qcompress.training.config import build_fit_config
        from qcompress.training.fit import RESUME_PLACEMENT, fit
        from qcompress.training.run_dir import read_header

        flags = {
            "model": model, "data": data, "eval_data": eval_data, "method": method, "rank": rank, "alpha": alpha,
            "dropout": dropout, "targets": targets, "zero_init": zero_init, "generator_scope": generator_scope,
            "dora_magnitude": dora_magnitude, "prefix_tokens": prefix_tokens, "n_mlp": n_mlp, "depth": depth,
            "backend": backend, "qtha_inner": qtha_inner, "qtha_bond": qtha_bond, "qtha_layers": qtha_layers,
            "steps": steps, "decay_to_init": decay_to_init, "lr": lr, "batch_size": batch_size, "grad_accum": grad_accum, "seq_len": seq_len,
            "seed": seed, "eval_every": eval_every, "threads": threads, "device": device, "precision": precision,
            "gradient_checkpointing": gradient_checkpointing, "eval_tokens": eval_tokens,
            "eval_seq_len": eval_seq_len, "eval_stride": eval_stride,
        }
        overrides = config_overrides(flags, method_options)
        given = sorted({"set" if key.startswith("method_config.") else key.split(".")[-1].replace("_", "-")
                        for key, value in overrides.items() if value is not None})
        if resume:
            read_header(out)  # a missing or broken run first: dropping flags would not help with that
            # where the run continues (another machine, a GPU) is the resume's choice; what it trains is the run's
            placement = {key: overrides[key] for key in RESUME_PLACEMENT if overrides[key] is not None}
            what = [flag for flag in given if flag not in RESUME_PLACEMENT]
            if config_file or what:
                raise InputError(
                    f"--resume continues {out} with its recorded config (only --threads and --device may change); "
                    f"drop --{' --'.join(what) or 'config'}"
                )
            result = fit(None, out, resume=True, force=force, ignore_model_mismatch=ignore_model_mismatch, placement=placement)
        else:
            result = fit(build_fit_config(config_file, overrides, override_flags(flags)), out, force=force)
        summary = result.summary
        if summary is None:  # a rank other than 0 of torchrun / accelerate launch: rank 0 reports
            return
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        counts = summary["counts"]
        step_time = summary["seconds_per_step_median"]
        timing = f"{step_time:.2f} s/step" if step_time is not None else "no step run by this command"
        typer.echo(
            f"{summary['method']}: held-out perplexity {summary['initial_eval_perplexity']:.2f} -> "
            f"{summary['eval_perplexity']:.2f}; trainable {counts['trainable']:,} "
            f"({100 * summary['fraction_of_lora']:.1f}% of LoRA's {counts['lora_equivalent']:,}); "
            f"{timing}; run in {out}"
        )
