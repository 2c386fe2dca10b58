"""Resolve what ``qcompress export`` was pointed at: a training run, or a plain model spec.

A directory holding ``qcompress.json`` is a run made by ``qcompress fit``: its adapters are
collapsed into dense weights first. Anything else is a model spec (local Hugging Face directory
or the embedded default ``smollm2-135m``), exported unchanged, which gives the base-model
artifact that a collapsed run is compared against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qcompress.backends.sampled import SamplerBackend


@dataclass
class ExportSource:
    model: Any
    tokenizer: Any
    description: dict[str, Any]


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def load_source(source: str, measure: SamplerBackend | None = None, ignore_model_mismatch: bool = False) -> ExportSource:
    """Load a run (collapsed, from ``measure``d probabilities if given) or a model spec; InputError otherwise."""
    from qcompress.errors import InputError

    path = Path(source).expanduser()
    if path.is_dir() and (path / "qcompress.json").is_file():
        from qcompress.training.run_dir import load_run

        run = load_run(path, ignore_model_mismatch=ignore_model_mismatch)
        if measure is None:
            model, tokenizer = run.collapse()
        else:
            from qcompress.backends.sampled import collapse_measured

            model, tokenizer = collapse_measured(run.adapted, run.method, measure), run.tokenizer
        description = {
            "kind": "run", "path": source, "config_sha256": run.config_sha256, "method": run.method,
            "counts": dict(run.counts), "identity": run.identity,
            "probabilities": "exact" if measure is None else measure.measurement().describe(),
        }
        return ExportSource(model, tokenizer, description)
    if measure is not None:
        raise InputError(f"--shots/--noise re-measure a trained circuit: {source} is not a run directory of a qpa-* method")
    from qcompress.models import load_model

    loaded = load_model(source)
    description = {
        "kind": "model", "spec": source, "method": "none",
        "counts": {"parameters": parameter_count(loaded.model)}, "identity": loaded.identity,
    }
    return ExportSource(loaded.model, loaded.tokenizer, description)
