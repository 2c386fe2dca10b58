"""The run directory written by ``qcompress fit`` and read by eval, export and ``--resume``.

RUN_DIR/
  qcompress.json          resolved config, config sha256, method, counts, base-model identity, versions
  generator.safetensors   (QPA methods) or adapter.safetensors (classical): only what was trained
  checkpoint/             trainable state + optimizer, scheduler, RNG and step, for --resume
  metrics.jsonl, curves.png, circuit.txt, summary.json
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

from qcompress.atomic import write_atomic, write_json_atomic
from qcompress.config import validated
from qcompress.console import note
from qcompress.errors import InputError
from qcompress.methods import AdaptedModel, Collapsed, get_method
from qcompress.targets import RUN_HEADER
from qcompress.training.config import FitConfig, config_sha256
from qcompress.versions import library_versions

HEADER = RUN_HEADER
METRICS = "metrics.jsonl"
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
    """The run's header, or a one-line error saying why this is not a usable run directory.

    The config it holds is checked against the sha256 recorded when the run was made: a run's
    config cannot change after fit (an edited ``alpha`` would silently change what eval and export
    compute, while the manifest went on quoting the old hash).
    """
    if not run_dir.is_dir():
        raise InputError(f"run directory {run_dir} not found: give the --out directory of a qcompress fit")
    path = run_dir / HEADER
    if not path.is_file():
        raise InputError(f"{run_dir} is not a qcompress run ({HEADER} missing): give the --out directory of a qcompress fit")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
        config, recorded = header["config"], header["config_sha256"]
        if not all(isinstance(header[key], dict) for key in ("config", "base_model", "counts")) or not isinstance(recorded, str):
            raise TypeError("a field of the wrong type")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise InputError(f"{path} is corrupt (not a qcompress run header): re-run qcompress fit") from None
    if header.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path} has run format {header.get('format_version')!r}; this qcompress reads format {FORMAT_VERSION}: "
            "use the qcompress version that made the run"
        )
    if config_sha256(config) != recorded:
        raise InputError(
            f"{path} was edited: its config no longer matches the config_sha256 recorded by qcompress fit; "
            "restore the file, or start a new run with the settings you want"
        )
    return header


CONTENT_SHA256 = "qcompress.content_sha256"


def content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order.

    Stored in the safetensors header when a file is written and recomputed when it is read, so a
    flipped byte in the data (which safetensors itself cannot notice) is caught before it trains
    or exports. Hashing what was loaded, not the file, keeps it independent of the file layout.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    cpu = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    stamped = {**(metadata or {}), CONTENT_SHA256: content_sha256(cpu)}
    write_atomic(path, lambda tmp: save_file(cpu, str(tmp), metadata=stamped))


def load_tensors(path: Path, fix: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, checked against the content hash in its header (files written
    before qcompress stored one are accepted as they are). ``fix``: the advice when it is lost or
    damaged; by default a run's state file's, which its checkpoint (kept after the run) rebuilds."""
    if fix is None:
        fix = f"qcompress fit --resume --out {path.parent} rebuilds it from the run's checkpoint; without one, re-run qcompress fit"
    if not path.is_file():
        raise InputError(f"{path} is missing: the run is incomplete; {fix}")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            recorded = (handle.metadata() or {}).get(CONTENT_SHA256)
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path} is corrupt ({str(error).splitlines()[0]}): {fix}") from None
    if recorded is not None and recorded != content_sha256(tensors):
        raise InputError(f"{path} is corrupt (its tensors do not match the hash in its header): {fix}")
    return tensors


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

    def collapse(self) -> tuple[Collapsed, PreTrainedTokenizerBase]:
        """The adapter evaluated once and merged into dense base weights, with what the exporters must know."""
        return self.adapted.collapse(), self.tokenizer


def check_identity(expected: dict[str, Any], actual: dict[str, Any], run_dir: Path, ignore_mismatch: bool = False) -> None:
    """Refuse a base model other than the one the run was trained on: another config (the adapter
    may not even fit) or the same config with other weights (a run recorded before weights were
    fingerprinted is checked on its config only). ``ignore_mismatch`` turns the refusal into a note."""
    if expected.get("config_sha256") != actual.get("config_sha256"):
        problem = (
            f"run {run_dir} was made for base model {expected.get('name')!r} ({expected.get('model_type')}), "
            f"but the model loaded now is {actual.get('name')!r} ({actual.get('model_type')}) with a different config"
        )
    elif "weights_sha256" in expected and expected["weights_sha256"] != actual.get("weights_sha256"):
        problem = (
            f"run {run_dir} was made for base model {expected.get('name')!r}, but the model loaded now "
            f"({actual.get('name')!r}) has the same config and other weights"
        )
    else:
        return
    if ignore_mismatch:
        note(f"{problem}; going on as --ignore-model-mismatch asks")
        return
    raise InputError(f"{problem}: use the model the run was trained on (or pass --ignore-model-mismatch if this is deliberate)")


def load_run(run_dir: Path, model_spec: str | None = None, ignore_model_mismatch: bool = False) -> LoadedRun:
    """Rebuild the adapted model of ``run_dir`` from its header and trained state."""
    from qcompress.models import load_model

    run_dir = Path(run_dir)
    header = read_header(run_dir)
    config = validated(FitConfig, header["config"], f"config in {run_dir / HEADER}")
    method = get_method(config.method)
    state = load_tensors(run_dir / method.state_file)
    loaded = load_model(model_spec or config.model)
    check_identity(header["base_model"], loaded.identity, run_dir, ignore_model_mismatch)
    adapted = method.attach(loaded.model, config)
    adapted.load_trainable_state(state)
    adapted.model.eval()
    return LoadedRun(run_dir, header, config, adapted, loaded.tokenizer)
