"""The resolved configuration of one ``qcompress fit`` run (YAML file, then CLI flags on top).

It is stored verbatim in ``RUN_DIR/qcompress.json`` and is everything needed to rebuild the
adapted model for eval, export and ``--resume``; its sha256 identifies the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from qcompress.config import MAX_SEED, StrictModel, flag_fix, validated
from qcompress.errors import InputError
from qcompress.generators.qpa import QPAGeneratorConfig
from qcompress.methods.run_config import AdapterConfig


class FitConfig(StrictModel):
    """Everything that determines a run: model, data, method, optimisation, evaluation."""

    model: str = "smollm2-135m"
    data: str = "austen"
    eval_data: str | None = None
    method: str = "qpa-lora"
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    qpa: QPAGeneratorConfig = Field(default_factory=QPAGeneratorConfig)
    method_config: dict[str, Any] = Field(
        default_factory=dict, description="the method's own hyper-parameters, validated by its config class (qtha's, the PEFT tuners', plugins')"
    )

    steps: int = Field(100, ge=1)
    lr: float | None = Field(None, gt=0, allow_inf_nan=False, description="default: the method's own")
    weight_decay: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    decay_to_init: float = Field(
        0.0, ge=0.0, allow_inf_nan=False,
        description="each step, pull every trained tensor back toward its initial value by lr x this (the update toward dW = 0); 0: off",
    )
    warmup_steps: int | None = Field(None, ge=0, description="default: 10% of steps")
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    seq_len: int | None = Field(None, ge=2, description="tokens per training block; default 128, or the model's context if shorter")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    max_grad_norm: float = Field(1.0, ge=0.0, allow_inf_nan=False, description="0 disables clipping")

    eval_every: int = Field(50, ge=0, description="steps between held-out evaluations; 0: only at the end")
    eval_tokens: int = Field(8192, ge=2, description="held-out tokens scored (from the start of the eval text)")
    eval_seq_len: int | None = Field(None, ge=2, description="evaluation window; default 256, or the model's context if shorter")
    eval_stride: int | None = Field(None, ge=1, description="evaluation window advance; default half the window")
    checkpoint_every: int = Field(50, ge=1)
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: all cores")
    device: str = Field("auto", description="torch device: auto (a GPU when present), cpu, cuda, cuda:N or mps")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="base model's compute precision; circuits, generators and trained tensors stay float32"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass to save memory")

    @model_validator(mode="before")
    @classmethod
    def _legacy_qtha_section(cls, data: Any) -> Any:
        """Read the ``qtha:`` section of configs written before QTHA owned its hyper-parameters.

        Every run header of that time carries one (defaults for other methods), and a YAML file may:
        for a ``qtha`` fit it becomes ``method_config`` (keys given there win); for any other method it
        is dropped, as it was always ignored. The recorded config_sha256 stays the header's own."""
        if not isinstance(data, dict) or "qtha" not in data:
            return data
        data = dict(data)
        section = data.pop("qtha")
        if data.get("method") == "qtha" and isinstance(section, dict):
            data["method_config"] = {**section, **(data.get("method_config") or {})}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FitConfig:
        if None not in (self.eval_stride, self.eval_seq_len) and self.eval_stride > self.eval_seq_len:
            raise ValueError(f"eval_stride ({self.eval_stride}) must not exceed eval_seq_len ({self.eval_seq_len}) "
                             "(the windows would skip tokens): lower the stride or widen the window")
        if self.warmup_steps is not None and self.warmup_steps >= self.steps > 1:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be below steps ({self.steps}): lower warmup_steps "
                             "or raise steps")
        return self

    @property
    def effective_warmup_steps(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else self.steps // 10

    def sha256(self) -> str:
        """Identity of the run: hash of the canonical JSON of this config."""
        return config_sha256(self.model_dump(mode="json"))


def config_sha256(data: dict[str, Any]) -> str:
    """sha256 of a config as recorded (its JSON form), so a stored header can be checked as it stands."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _deep_update(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"config file {path} not found: give the path of a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise InputError(f"config file {path} is not UTF-8 text: give a YAML file") from None
    except yaml.YAMLError as error:
        raise InputError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping of options, not {type(data).__name__}")
    return data


def build_fit_config(file: Path | None, overrides: dict[str, Any], flags: Mapping[str, str] | None = None) -> FitConfig:
    """YAML file (optional) with CLI overrides on top; ``None`` overrides are ignored.

    Overrides use dotted keys for nested sections (``adapter.rank``). ``seed`` also seeds the
    generator unless ``qpa.seed`` is given explicitly, so ``--seed`` changes the whole run.
    ``flags`` names the command-line flag of each override, so an invalid value's error says which
    flag to change, or that the key is in ``file``.
    """
    data = from_file = read_yaml(file) if file else {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        node: dict = {}
        cursor = node
        *parents, leaf = dotted.split(".")
        for key in parents:
            cursor = cursor.setdefault(key, {})
        cursor[leaf] = value
        data = _deep_update(data, node)
    if "seed" in data and "seed" not in data.get("qpa", {}):
        data = _deep_update(data, {"qpa": {"seed": data["seed"]}})
    given = {key: flag for key, flag in (flags or {}).items() if overrides.get(key) is not None}
    return validated(FitConfig, data, "fit config", flag_fix(given.get, file, lambda path: has_key(from_file, path)))


def has_key(data: dict[str, Any], dotted: str) -> bool:
    """Whether the nested mapping ``data`` holds the dotted key (``adapter.rank``)."""
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True
