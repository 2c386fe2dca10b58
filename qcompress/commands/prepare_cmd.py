"""``qcompress prepare``: put the embedded default model and corpus into the cache, once.

``make setup`` runs this on a fresh machine so the first ``fit`` does not stall on a GGUF conversion
or a Debian download; a second run only reports what is already there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("prepare")
    def prepare(
        model: bool = typer.Option(True, "--model/--no-model", help="Convert the embedded SmolLM2-135M GGUF."),
        corpus: bool = typer.Option(True, "--corpus/--no-corpus", help="Extract the Jane Austen novels."),
    ) -> None:
        """Prepare the embedded defaults (model smollm2-135m, corpus austen) in the qcompress cache."""
        from qcompress import data, models

        typer.echo(f"cache: {models.cache_dir()}")
        if model:
            _report("model smollm2-135m", models.default_model_dir(), models.prepare_default_model)
        if corpus:
            _report("corpus austen", data.austen_dir(), data.prepare_default_corpus)


def _report(what: str, target: Path, make: Callable[[], Path]) -> None:
    """Run ``make`` unless ``target`` is already cached, then print where it is and how big."""
    cached = target.is_dir()
    started = time.perf_counter()
    path = make()
    status = "cached" if cached else f"prepared in {time.perf_counter() - started:.1f} s"
    typer.echo(f"{what}: {path} ({_megabytes(path):.1f} MB, {status})")


def _megabytes(folder: Path) -> float:
    return sum(file.stat().st_size for file in folder.rglob("*") if file.is_file()) / 1e6
