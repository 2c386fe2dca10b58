"""The run directory written by ``qcompress fit`` and read by eval, export and ``--resume``.

RUN_DIR/
  qcompress.json          resolved config, config sha256, method, counts, base-model identity, versions
  generator.safetensors   (QPA methods) or adapter.safetensors (classical): only what was trained
  checkpoint/             trainable state + optimizer, scheduler, RNG and step, for --resume
  metrics.jsonl, curves.png, circuit.txt, summary.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from qcompress.atomic import write_atomic, write_json_atomic
from qcompress.config import validated
from qcompress.errors import InputError
from qcompress.methods import AdaptedModel, get_method
from qcompress.training.config import FitConfig
from qcompress.versions import library_versions

HEADER = "qcompress.json"
FORMAT_VERSION = 1
PACKAGES = ("qcompress", "torch", "transformers", "peft", "quimb", "cotengra", "cirq-core", "safetensors")


def write_header(run_dir: Path, config: FitConfig, identity: dict, counts: dict[str, int]) -> dict:
    header = {
        "format_version": FORMAT_VERSION,
        "config": config.model_dump(mode="json"),
        "config_sha256": config.sha256(),
        "method": config.method,
        "counts": counts,
        "base_model": identity,
        "versions": library_versions(PACKAGES),
    }
    write_json_atomic(run_dir / HEADER, header)
    return header


def read_header(run_dir: Path) -> dict:
    """The run's header, or a one-line error saying why this is not a usable run directory."""
    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} not found: give the --out directory of a qcompress fit")
    path = run_dir / HEADER
    if not path.is_file():
        raise InputError(f"{run_dir} is not a qcompress run ({HEADER} missing): give the --out directory of a qcompress fit")
    try:
        header = json.loads(path.read_text())
        header["config"]  # noqa: B018 - presence check
    except (json.JSONDecodeError, KeyError, TypeError):
        raise InputError(f"{path} is corrupt (not a qcompress run header): re-run qcompress fit") from None
    return header


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    cpu = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    write_atomic(path, lambda tmp: save_file(cpu, str(tmp), metadata=metadata or {}))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"{path} is missing: the run is incomplete; re-run qcompress fit (or --resume it)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path} is corrupt ({str(error).splitlines()[0]}): re-run qcompress fit") from None


@dataclass
class LoadedRun:
    """A run rebuilt on its base model: ready for evaluation or collapse."""

    run_dir: Path
    header: dict
    config: FitConfig
    adapted: AdaptedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def identity(self) -> dict:
        return self.header["base_model"]

    @property
    def counts(self) -> dict[str, int]:
        return self.header["counts"]

    @property
    def config_sha256(self) -> str:
        return self.header["config_sha256"]

    def collapse(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """The adapter evaluated once and merged into dense base weights (a plain HF model)."""
        return self.adapted.collapse(), self.tokenizer


def check_identity(expected: dict[str, Any], actual: dict[str, Any], run_dir: Path) -> None:
    if expected.get("config_sha256") != actual.get("config_sha256"):
        raise InputError(
            f"run {run_dir} was made for base model {expected.get('name')!r} ({expected.get('model_type')}), "
            f"but the model loaded now is {actual.get('name')!r} ({actual.get('model_type')}) with a different "
            "config: use the model the run was trained on"
        )


def load_run(run_dir: Path, model_spec: str | None = None) -> LoadedRun:
    """Rebuild the adapted model of ``run_dir`` from its header and trained state."""
    from qcompress.models import load_model

    run_dir = Path(run_dir)
    header = read_header(run_dir)
    config = validated(FitConfig, header["config"], f"config in {run_dir / HEADER}")
    method = get_method(config.method)
    state = load_tensors(run_dir / method.state_file)
    loaded = load_model(model_spec or config.model)
    check_identity(header["base_model"], loaded.identity, run_dir)
    adapted = method.attach(loaded.model, config)
    adapted.load_trainable_state(state)
    adapted.model.eval()
    return LoadedRun(run_dir, header, config, adapted, loaded.tokenizer)
