"""``qcompress eval``: held-out perplexity of a base model, a run directory or an exported artifact."""

from __future__ import annotations

import json

import typer

from qcompress.commands.generate_cmd import NO_VERIFY_HELP
from qcompress.commands.options import ignore_model_mismatch_option, noise_option, sampler_option, sampling_seed_option, shots_option


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        target: str = typer.Argument(..., help="A run directory, an artifact directory, or a model spec (e.g. smollm2-135m)."),
        data: str = typer.Option(None, help="Corpus whose held-out part is scored (default: the run's corpus, else 'austen')."),
        eval_data: str = typer.Option(None, help="Score this text instead of the corpus' held-out part (a corpus name such as austen-test or state-of-the-union, or a path)."),
        seq_len: int | None = typer.Option(
            None, min=2, help="Window length in tokens (default: 256, or the model's context if shorter)."
        ),
        stride: int | None = typer.Option(
            None, min=1, help="Window advance (default: half the window); tokens get at least seq_len - stride of context."
        ),
        max_tokens: int = typer.Option(8192, min=2, help="Score the first this-many held-out tokens."),
        shots: int = shots_option("score the weights collapsed"),
        noise: str = noise_option(),
        backend: str = sampler_option(),
        seed: int = sampling_seed_option(),
        no_verify: bool = typer.Option(False, "--no-verify", help=NO_VERIFY_HELP),
        ignore_model_mismatch: bool = ignore_model_mismatch_option("Run: score it"),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Token-weighted sliding-window perplexity on held-out text (same definition as qcompress fit)."""
        from qcompress.backends.sampled import sampler_backend
        from qcompress.training.eval_target import evaluate_target

        measure = sampler_backend(backend, shots, noise, seed)
        result = evaluate_target(target, data, eval_data, seq_len, stride, max_tokens, measure, verify=not no_verify,
                                 ignore_model_mismatch=ignore_model_mismatch)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            measured = f" measured as {result['measurement']}" if measure is not None else ""
            typer.echo(f"{target} ({result['kind']}){measured}: perplexity {result['perplexity']:.3f} over {result['tokens']} tokens of {result['data']}")
