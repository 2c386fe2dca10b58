"""``qcompress generate``: text from an exported artifact with ONNX Runtime (never imports torch)."""

from __future__ import annotations

from pathlib import Path

import typer

from qcompress.config import MAX_SEED

NO_VERIFY_HELP = "skip the sha256 check of the files loaded (faster on large models)"


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        artifact: Path = typer.Argument(..., help="Artifact directory made by qcompress export (uses its onnx/)."),
        prompt: str = typer.Option(..., "--prompt", help="Text to continue."),
        max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Stop after this many new tokens (or at EOS)."),
        sample: bool = typer.Option(False, "--sample", help="Sample instead of greedy decoding."),
        temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (> 0)."),
        top_k: int = typer.Option(0, "--top-k", help="Keep only the k most likely tokens (0 = all)."),
        top_p: float = typer.Option(1.0, "--top-p", help="Keep the smallest set of tokens with this total probability."),
        seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed for sampling."),
        threads: int | None = typer.Option(None, "--threads", min=1, max=256, help="ONNX Runtime intra-op threads (default: up to 4)."),
        no_verify: bool = typer.Option(False, "--no-verify", help=NO_VERIFY_HELP),
    ) -> None:
        """Generate a completion with ONNX Runtime and print it, then tokens/s on stderr."""
        from qcompress.runtime import OnnxCausalLM
        from qcompress.runtime.artifact import open_artifact
        from qcompress.runtime.context import check_generation_fits

        files = open_artifact(artifact, verify=not no_verify)
        # before the session: building it is the slow part, and a too-long request fails anyway
        check_generation_fits(len(files.encode(prompt)), max_new_tokens, files.context)
        model = OnnxCausalLM.from_files(files, threads=threads)
        text = model.generate(
            prompt, max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature,
            top_k=top_k, top_p=top_p, seed=seed,
        )
        typer.echo(prompt + text)
        stats = model.last_stats
        typer.echo(
            f"{stats.new_tokens} tokens in {stats.seconds:.2f} s: {stats.tokens_per_second:.1f} tokens/s "
            f"(first token {stats.first_token_seconds * 1000:.0f} ms)",
            err=True,
        )
