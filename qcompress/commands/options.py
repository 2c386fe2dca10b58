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


# Where each fit flag lands in the run's config (FitConfig): fit and inspect --method read the same
# names, so a flag means the same thing in both. Flags not listed are top-level keys of their own name.
CONFIG_KEYS = {
    "rank": "adapter.rank", "alpha": "adapter.alpha", "dropout": "adapter.dropout", "targets": "adapter.targets",
    "zero_init": "adapter.zero_init", "generator_scope": "adapter.generator_scope",
    "dora_magnitude": "adapter.dora_magnitude", "prefix_tokens": "adapter.prefix_tokens",
    "n_mlp": "qpa.n_mlp", "depth": "qpa.depth", "backend": "qpa.backend",
    # QTHA's own options (its method_config), kept as flags of their own for the method the papers are about
    "qtha_inner": "method_config.inner", "qtha_bond": "method_config.bond", "qtha_layers": "method_config.layers",
}


def config_overrides(flags: dict[str, Any], method_options: list[str] | None = None) -> dict[str, Any]:
    """Command-line values (``None``: not given) as the dotted overrides ``build_fit_config`` takes,
    with ``--set KEY=VALUE`` as ``method_config.KEY``."""
    overrides = {CONFIG_KEYS.get(name, name): value for name, value in flags.items()}
    overrides.update(method_config_overrides(method_options or []))
    return overrides


def override_flags(flags: dict[str, Any]) -> dict[str, str]:
    """The flag behind each dotted override of :func:`config_overrides`, for errors that say what to change."""
    return {CONFIG_KEYS.get(name, name): f"--{name.replace('_', '-')}" for name in flags}


def method_options_option() -> Any:
    return typer.Option(
        None, "--set", metavar="KEY=VALUE",
        help="The method's own hyper-parameter (method_config.KEY in YAML), repeatable; VALUE is read as YAML "
        "(e.g. --set projection_rank=256). Plugins' methods take theirs this way.",
    )


def method_config_overrides(assignments: list[str]) -> dict[str, object]:
    """``--set KEY=VALUE`` as dotted overrides of ``method_config``; VALUE parsed as YAML (1e-3, true, [a, b])."""
    import yaml

    from qcompress.errors import InputError

    overrides: dict[str, object] = {}
    for assignment in assignments:
        key, equals, raw = assignment.partition("=")
        if not equals or not key.strip() or "." in key:
            raise InputError(f"--set {assignment!r} must be KEY=VALUE with a plain key: e.g. --set projection_rank=256")
        try:
            overrides[f"method_config.{key.strip()}"] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise InputError(f"--set {assignment!r}: the value is not valid YAML; quote it as a string") from None
    return overrides
