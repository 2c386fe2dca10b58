"""A method that is one PEFT tuner (VeRA, FourierFT, VB-LoRA, IA3, TinyLoRA): attach, count, merge.

Such a method differs from its siblings only in the PEFT config it builds: PEFT owns the layers,
their forward, their saved state and their merge. So :class:`PeftTunerMethod` does everything else
once: it resolves the shared ``adapter.targets`` to the layers they name (with their shapes, so a
method can check its own options against them and refuse in one line before PEFT raises), attaches
under a forked RNG seeded with the run's seed (so a resume rebuilds the same adapter), counts the
trainable tensors against LoRA of rank ``adapter.rank`` on the same targets, and collapses by PEFT's
merge into a plain Hugging Face model that every exporter takes. A subclass names its
``peft_config_cls`` and returns the tuner's own keyword arguments from :meth:`PeftTunerMethod.tuner_kwargs`.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from peft import PeftConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from qcompress.config import StrictModel
from qcompress.errors import InputError
from qcompress.methods.base import AdaptedModel, Method
from qcompress.methods.lora import PeftAdapted
from qcompress.methods.peft_lora import lora_budget
from qcompress.methods.run_config import RunConfig
from qcompress.models import is_conv1d_model, resolve_target_modules


@dataclass(frozen=True)
class TunerTargets:
    """The layers a tuner wraps: full module name -> (fan_in, fan_out), in module order, and whether
    they are GPT-2 ``Conv1D`` (stored fan-in first, so PEFT needs ``fan_in_fan_out=True``)."""

    shapes: dict[str, tuple[int, int]]
    conv1d: bool

    def named(self, suffixes: list[str]) -> list[str]:
        """The targeted layers whose full name is, or ends with, one of ``suffixes``."""
        return [name for name in self.shapes if _named(name, suffixes)]


def _named(name: str, suffixes: list[str]) -> bool:
    return any(name == suffix or name.endswith("." + suffix) for suffix in suffixes)


def tuner_targets(model: PreTrainedModel, targets: list[str] | str | None) -> TunerTargets:
    """``adapter.targets`` (suffixes, a regex or the architecture's default) resolved to full layer names."""
    names = resolve_target_modules(model, targets)
    conv1d = is_conv1d_model(model, names)
    shapes = {
        name: tuple(module.weight.shape) if conv1d else (module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, Conv1D)) and _named(name, names)
    }
    return TunerTargets(shapes, conv1d)


class PeftTunerAdapted(PeftAdapted):
    """A PEFT tuner's model: PEFT saves, loads and merges it; its trainable tensors are its whole adapter."""

    def __init__(self, peft_model: PeftModel, lora_equivalent: int) -> None:
        super().__init__(peft_model)
        self.lora_equivalent = lora_equivalent

    def counts(self) -> dict[str, int]:
        trainable = sum(p.numel() for p in self.trainable_parameters())
        return {"trainable": trainable, "adapter_weights": trainable, "lora_equivalent": self.lora_equivalent}


class PeftTunerMethod(Method):
    """One PEFT tuner as a qcompress method; subclasses give ``name``, ``default_lr``, ``config_cls``,
    ``peft_config_cls`` and :meth:`tuner_kwargs`."""

    #: PEFT's config class for this tuner (``VeraConfig``, ``FourierFTConfig``, ...)
    peft_config_cls: ClassVar[type[PeftConfig]]
    #: the tuner's dropout argument, given ``adapter.dropout``; ``None``: the tuner has no dropout
    #: (a ``--dropout`` other than 0 is then refused rather than silently ignored)
    dropout_arg: ClassVar[str | None] = None

    @abstractmethod
    def tuner_kwargs(self, targets: TunerTargets, options: StrictModel, config: RunConfig) -> dict[str, Any]:
        """The tuner's own arguments of ``peft_config_cls`` (targets, ``fan_in_fan_out`` and the task
        are added here); raises a one-line InputError where the options do not fit the targets."""

    def dropout(self, rate: float) -> dict[str, float]:
        """``adapter.dropout`` as the tuner's own dropout argument, or a one-line refusal where it has none."""
        if self.dropout_arg is not None:
            return {self.dropout_arg: rate}
        if rate:
            raise InputError(f"method {self.name!r} has no dropout (got --dropout {rate}): drop --dropout / adapter.dropout")
        return {}

    def attach(self, model: PreTrainedModel, config: RunConfig) -> AdaptedModel:
        options = self.options(config.method_config)
        targets = tuner_targets(model, config.adapter.targets)
        tuner = self.peft_config_cls(
            target_modules=list(targets.shapes), fan_in_fan_out=targets.conv1d, task_type="CAUSAL_LM",
            **self.dropout(config.adapter.dropout), **self.tuner_kwargs(targets, options, config),
        )
        budget = lora_budget(model, config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return self.adapted(get_peft_model(model, tuner), config, budget)

    def adapted(self, peft_model: PeftModel, config: RunConfig, lora_equivalent: int) -> AdaptedModel:
        """The attached tuner as a method's model: here its own tensors trained; a subclass may generate them
        instead (the vera plugin's ``qpa-vera``). Runs under the seeded RNG of :meth:`attach`."""
        return PeftTunerAdapted(peft_model, lora_equivalent)
