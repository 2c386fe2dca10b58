"""Options that several commands share, defined once so their spelling, bounds and help agree.

Typer reads options from function defaults, so each shared option is a small factory returning a
fresh ``typer.Option`` (one object per command signature), with the command's own wording where the
meaning differs (eval scores a measured collapse, export writes one).
"""

from __future__ import annotations

from typing import Any

import typer

from qcompress.config import MAX_SEED


def shots_option(what: str) -> Any:
    """``--shots K``: collapse a QPA run from K measured shots; ``what`` says what is built from them."""
    return typer.Option(None, "--shots", min=1, help=f"QPA run: {what} from K measured shots instead of exact probabilities.")


def noise_option() -> Any:
    return typer.Option(None, "--noise", help="QPA run: depolarizing:p after every gate (density matrix, <= 12 qubits).")


def sampler_option() -> Any:
    return typer.Option("sampled", "--backend", help="Sampler backend for --shots (plugins add more, e.g. qsim).")


def sampling_seed_option() -> Any:
    return typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of the shot sampling.")


def ignore_model_mismatch_option(what: str) -> Any:
    return typer.Option(False, "--ignore-model-mismatch", help=f"{what} on a base model whose weights differ from the one it was trained on.")
