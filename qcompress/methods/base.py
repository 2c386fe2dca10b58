"""What every adapter method provides, so training and export never switch on method names.

A method turns a frozen base model into an :class:`AdaptedModel`: the model to call, the
parameters to train, how to save and restore them, how many there are, and how to collapse the
adapter into a plain Hugging Face model with dense merged weights.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch
from transformers import PreTrainedModel

if TYPE_CHECKING:
    from qcompress.training.config import FitConfig


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
    def collapse(self) -> PreTrainedModel:
        """Evaluate the adapter once and merge it into the base weights; returns a plain model."""

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

    @abstractmethod
    def attach(self, model: PreTrainedModel, config: FitConfig) -> AdaptedModel:
        """Attach a fresh adapter (deterministic given the config's seeds) to ``model`` in place."""
