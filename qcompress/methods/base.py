"""What every adapter method provides, so training and export never switch on method names.

A method turns a frozen base model into an :class:`AdaptedModel`: the model to call, the
parameters to train, how to save and restore them, how many there are, and how to collapse the
adapter into a plain Hugging Face model with dense merged weights. What collapse returns is a
:class:`Collapsed`: the model plus what the exporters must know about it (the formats it cannot
go to and why, extra files to write beside a format's output, and, for a LoRA-family method, the
adapter as PEFT itself holds it before the merge), so nothing is stuck onto the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import PreTrainedModel

from qcompress.config import StrictModel, validated
from qcompress.errors import InputError
from qcompress.methods.run_config import RunConfig

#: writes extra files into a format's output directory (already filled by the exporter); returns manifest info
ExtraFiles = Callable[[Path], dict[str, Any]]


@dataclass(frozen=True)
class PeftAdapter:
    """The update as PEFT's own LoRA/DoRA adapter, taken just before the merge overwrites the base.

    A multi-LoRA server or ``PeftModel.from_pretrained`` needs the unmerged pieces, which the merged
    model has lost: PEFT's ``config`` as attached (a ``LoraConfig``: r, lora_alpha, target_modules,
    fan_in_fan_out, use_dora, base_model_name_or_path), PEFT's adapter ``state`` (its
    ``get_peft_model_state_dict``: dense lora_A / lora_B and DoRA magnitudes, generated tensors
    already evaluated) and ``base_weights``, the targeted layers' weights before the merge by the
    merged model's parameter names, so an exporter can rebuild the unmerged model exactly."""

    config: Any
    state: dict[str, torch.Tensor]
    base_weights: dict[str, torch.Tensor]


@dataclass
class Collapsed:
    """The contract between a collapsed method and the exporters.

    ``model`` is what every exporter writes (a Hugging Face model, possibly with extra modules or
    hooks); ``unsupported_formats`` maps a format the model cannot go to without losing part of it
    to the reason (the default format list skips it, an explicit request fails with that reason);
    ``extra_files`` maps a format to a writer run on that format's directory after its exporter,
    whose returned dict joins the format's manifest entry; ``peft_adapter`` is set by methods whose
    update is a LoRA/DoRA (``None``: the ``peft`` format refuses the model). A plain model is
    ``Collapsed(model)``."""

    model: PreTrainedModel
    unsupported_formats: dict[str, str] = field(default_factory=dict)
    extra_files: dict[str, ExtraFiles] = field(default_factory=dict)
    peft_adapter: PeftAdapter | None = None


def check_state_fits(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], what: str) -> None:
    """Refuse saved trained tensors whose names or shapes differ from the adapter the run's config
    builds (another rank, targets or generator shape), naming the first mismatch."""
    mismatched = sorted(set(state) ^ set(expected)) or [key for key in expected if state[key].shape != expected[key].shape]
    if mismatched:
        raise InputError(
            f"saved {what} does not fit this configuration (first mismatch: {mismatched[0]}): "
            "the run's config and its trained state disagree; re-run qcompress fit"
        )


class AdaptedModel(ABC):
    """A base model with one adapter attached; ``model`` is what the training loop calls."""

    model: torch.nn.Module

    @abstractmethod
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Exactly the tensors the optimiser updates (their count is the method's cost)."""

    @abstractmethod
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything needed to rebuild the adapter on the same base model (saved as safetensors)."""

    @abstractmethod
    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`trainable_state`; raises InputError when the state does not fit."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """``trainable`` parameters and ``adapter_weights`` (the dense adapter they stand for)."""

    @abstractmethod
    def collapse(self) -> Collapsed:
        """Evaluate the adapter once and merge it into the base weights (as far as it merges)."""

    def to(self, device: torch.device) -> None:
        """Move the model, and every constant the method keeps outside its modules, to ``device``."""
        self.model.to(device)

    def describe(self) -> str:
        """Human-readable structure (e.g. the circuit diagram) stored in the run directory."""
        return ""


class Method(ABC):
    """An adapter family registered under ``qcompress.methods`` (built-in or plugin)."""

    name: ClassVar[str]
    #: learning rate used when the user gives none (each family has its own sweet spot)
    default_lr: ClassVar[float]
    #: file in the run directory holding :meth:`AdaptedModel.trainable_state`
    state_file: ClassVar[str] = "adapter.safetensors"
    #: the method's own hyper-parameters (``method_config:`` in YAML, ``--set KEY=VALUE`` on the
    #: command line), validated by this class; ``None``: the method takes none beyond the shared sections
    config_cls: ClassVar[type[StrictModel] | None] = None
    #: the end of the one-line error for an invalid option of :attr:`config_cls`: where the user sets it
    options_fix: ClassVar[str] = "fix it with --set KEY=VALUE, or under method_config: in the --config file"

    @classmethod
    def options(cls, method_config: dict[str, Any]) -> StrictModel | None:
        """``method_config`` validated by :attr:`config_cls` (its defaults filled in), or a one-line error."""
        if cls.config_cls is None:
            if method_config:
                raise InputError(
                    f"method {cls.name!r} takes no options of its own (got {', '.join(sorted(method_config))}): "
                    "drop them (--set, --qtha-* flags, method_config:), or use the shared sections (adapter, qpa)"
                )
            return None
        return validated(cls.config_cls, method_config, f"method_config of {cls.name!r}", cls.options_fix)

    @abstractmethod
    def attach(self, model: PreTrainedModel, config: RunConfig) -> AdaptedModel:
        """Attach a fresh adapter (deterministic given the config's seeds) to ``model`` in place."""
