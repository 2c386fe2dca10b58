"""``qcompress export``: a run or a model -> safetensors directory + ONNX decoder + manifest."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

from qcompress.commands.options import ignore_model_mismatch_option, noise_option, sampler_option, sampling_seed_option, shots_option


def _summary(out: Path, manifest: dict) -> dict:
    return {
        "out": str(out),
        "source": manifest["source"],
        "method": manifest["method"],
        "dtype": manifest["dtype"],
        "formats": manifest["formats"],
        "files": len(manifest["files"]),
        "bytes": sum(entry["size"] for entry in manifest["files"]),
    }


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        source: str = typer.Argument(..., help="A run directory (holds qcompress.json), a Hugging Face model directory, or 'smollm2-135m'."),
        out: Path = typer.Option(..., "--out", help="Artifact directory to create."),
        format: str = typer.Option(None, "--format", help="Comma-separated exporters to run (default: safetensors,onnx; a qtha, ffa or qpa-ffa run: onnx)."),
        dtype: str = typer.Option("float32", "--dtype", help="Weights dtype of model/: float32, float16 or bfloat16 (ONNX stays float32)."),
        atol: float | None = typer.Option(None, "--atol", help="Max |logit diff| ONNX vs PyTorch (default 1e-4 below 50M params, else 1e-3)."),
        opset: int = typer.Option(18, "--opset", help="ONNX opset version."),
        force: bool = typer.Option(False, "--force", help="Replace the artifact in --out (only a qcompress artifact, and only once the new one is complete)."),
        shots: int = shots_option("build the weights (as hardware would; recorded in the manifest)"),
        noise: str = noise_option(),
        backend: str = sampler_option(),
        seed: int = sampling_seed_option(),
        ignore_model_mismatch: bool = ignore_model_mismatch_option("Export a run"),
        quantize: str = typer.Option(None, "--quantize", help="Quantize the ONNX decoder's weights: int8 or int4 (weight-only MatMulNBits) or int8-dynamic (activations too); gated on perplexity."),
        block_size: int = typer.Option(None, "--block-size", help="int8 and int4: weights per scale, a power of two >= 16 (default 32)."),
        quantize_tolerance: float = typer.Option(None, "--quantize-tolerance", help="Largest relative perplexity increase, quantized ONNX vs float32 PyTorch (default 0.02 int8 and int8-dynamic, 0.05 int4)."),
        quantize_eval_tokens: int = typer.Option(None, "--quantize-eval-tokens", help="Held-out tokens the perplexity gate scores (default 2048)."),
        data: str = typer.Option(None, "--data", help="Corpus whose held-out part the gate scores (default: the run's corpus, else 'austen')."),
        eval_data: str = typer.Option(None, "--eval-data", help="Score this text in the gate instead of the corpus' held-out part."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON summary of the manifest on stdout."),
    ) -> None:
        """Export a trained run (adapters collapsed into dense weights) or a base model for deployment."""
        from qcompress.errors import Interrupted
        from qcompress.export.artifact import check_out_dir, check_quantize_formats, export_artifact
        from qcompress.export.quantize import resolve_quantize
        from qcompress.export.source import load_source

        def progress(message: str) -> None:
            typer.echo(message, err=True)

        formats = None if format is None else [name.strip() for name in format.split(",") if name.strip()]
        quantization = resolve_quantize(quantize, block_size, quantize_tolerance, quantize_eval_tokens, data, eval_data)
        check_quantize_formats(quantization, formats)
        check_out_dir(out, force, Path(source).expanduser())
        from qcompress.backends.sampled import sampler_backend

        measure = sampler_backend(backend, shots, noise, seed)
        try:
            progress(f"loading {source}")
            loaded = load_source(source, measure, ignore_model_mismatch)
            manifest = export_artifact(
                loaded.model, loaded.tokenizer, out, source=loaded.description, formats=formats, dtype=dtype,
                atol=atol, force=force, opset=opset, command=shlex.join(["qcompress", *sys.argv[1:]]), progress=progress,
                quantize=quantization,
            )
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted while exporting {source}; nothing was written and {out} is as it was") from None
        parity = manifest["formats"].get("onnx", {}).get("parity")
        if parity:
            diffs = parity["max_abs_diff"]
            progress(f"ONNX parity: no-cache {diffs['no_cache']:.2e}, cache {diffs['cache']:.2e} (atol {parity['atol']:g})")
        gate = manifest["formats"].get("onnx", {}).get("quantization", {}).get("perplexity_gate")
        if gate:
            progress(f"perplexity gate: {gate['quantized_onnx']:.3f} quantized vs {gate['float32_pytorch']:.3f} float32 "
                     f"({gate['relative_change']:+.2%}, tolerance +{gate['tolerance']:.1%})")
        progress(f"wrote {out} ({len(manifest['files'])} files)")
        if as_json:
            typer.echo(json.dumps(_summary(out, manifest), indent=2, sort_keys=True))
