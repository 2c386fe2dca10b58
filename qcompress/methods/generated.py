"""The mechanism behind every QPA method: existing adapter tensors become views of a generator.

Each adapter tensor (e.g. PEFT's ``lora_A.weight``) gets a ``torch.nn.utils.parametrize``
parametrization that returns a slice of a generator's flat output, so the adapter library's own
forward and merge code keep working unchanged. The generators run once per forward pass of the
whole model (a forward pre-hook), never once per layer; removing the parametrizations with
``leave_parametrized=True`` is the collapse to plain dense tensors.

Two layouts map the generator's chunks onto the tensors. ``flat`` (the QPA paper's) concatenates
every tensor and cuts the result into chunks, so a chunk may straddle rows and tensors.
``factors`` gives every rank-one factor of a low-rank tensor its own chunk (a row of LoRA's A, a
column of its B, zero-padded to the chunk width), so each chunk is one direction of the update
and its bit-string names that direction; tensors without a rank axis take whole chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn.utils import parametrize

from qcompress.errors import InputError
from qcompress.numerics import full_precision


@dataclass(frozen=True)
class TensorSlot:
    """One adapter tensor to generate: ``getattr(module, attr)``, optionally zero at step 0.

    ``residual`` slots are the stored initial tensor *plus* the generated values, for tensors that
    must start at a meaningful non-zero value (DoRA's magnitude starts at the base weights' norms).
    ``rank_axis`` is the axis of a matrix that indexes its rank-one factors (LoRA's A: 0, B: 1), for
    the ``factors`` layout; None for tensors that are not factors of a low-rank update.
    """

    name: str
    module: torch.nn.Module
    attr: str = "weight"
    zero_at_start: bool = False
    residual: bool = False
    rank_axis: int | None = None

    @property
    def shape(self) -> torch.Size:
        return getattr(self.module, self.attr).shape

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def region(self, factor_width: int | None) -> int:
        """Generated numbers this slot reads: its size in the flat layout (``factor_width`` None); in the
        factors layout one chunk of ``factor_width`` per factor, or whole chunks without a rank axis."""
        if factor_width is None:
            return self.numel
        if self.rank_axis is None:
            return math.ceil(self.numel / factor_width) * factor_width
        length = self.numel // self.shape[self.rank_axis]
        if length > factor_width:
            raise InputError(
                f"the factors layout gives each factor of {self.name} ({length} weights) one chunk of n_mlp={factor_width}: "
                f"set --n-mlp to at least {length}"
            )
        return self.shape[self.rank_axis] * factor_width


class _SliceOf(torch.nn.Module):
    """Parametrization returning the slot's region of ``owner.current`` as its tensor (added to the stored
    tensor if residual): a reshaped slice in the flat layout, the first columns of its chunks in the factors one."""

    def __init__(self, owner: GeneratedTensors, start: int, slot: TensorSlot, factor_width: int | None):
        super().__init__()
        self._owner = (owner,)  # a tuple, so the owner is not registered as a submodule of every layer
        self.start = start
        self.shape = tuple(slot.shape)
        self.residual = slot.residual
        self.rank_axis = None if factor_width is None else slot.rank_axis
        self.region = slot.region(factor_width)
        self.factor_width = factor_width
        self.size = math.prod(self.shape)

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        flat = self._owner[0].current[self.start : self.start + self.region]
        if self.rank_axis is None:
            generated = flat[: self.size].view(self.shape)
        else:
            rank = self.shape[self.rank_axis]
            factors = flat.view(rank, self.factor_width)[:, : self.size // rank]
            generated = factors if self.rank_axis == 0 else factors.T
        return stored + generated if self.residual else generated


class GeneratedTensors(torch.nn.Module):
    """Generators (one per group of slots) whose concatenated outputs feed the slots' tensors.

    ``offset`` holds each zero-at-start slot's initial generated values, subtracted from then on,
    so the adapter starts at exactly dW = 0 while the generator keeps its paper initialisation.
    """

    def __init__(self, groups: list[list[TensorSlot]], make_generator: Callable[[int, int], torch.nn.Module],
                 factor_width: int | None = None):
        super().__init__()
        self.slots = [slot for group in groups for slot in group]
        self.factor_width = factor_width
        self.generators = torch.nn.ModuleList(
            make_generator(sum(slot.region(factor_width) for slot in group), index) for index, group in enumerate(groups)
        )
        with torch.no_grad():
            initial = torch.cat([generator() for generator in self.generators])
        mask = torch.cat(
            [torch.full((slot.region(factor_width),), slot.zero_at_start, dtype=torch.bool) for slot in self.slots]
        )
        self.register_buffer("offset", torch.where(mask, initial, torch.zeros_like(initial)))
        self.current = initial - self.offset
        self._hook: torch.utils.hooks.RemovableHandle | None = None
        self._attach()

    def _attach(self) -> None:
        start = 0
        for slot in self.slots:
            reader = _SliceOf(self, start, slot, self.factor_width)
            parametrize.register_parametrization(slot.module, slot.attr, reader, unsafe=True)
            getattr(slot.module.parametrizations, slot.attr).original.requires_grad_(False)
            start += reader.region

    def refresh(self) -> torch.Tensor:
        """Evaluate every generator once; all slots read this result until the next refresh.

        Generators run in their own float32 whatever autocast the model's forward pass is under
        (``--precision bf16``/``fp16``): see :func:`qcompress.numerics.full_precision`."""
        with full_precision(self.offset.device):
            self.current = torch.cat([generator() for generator in self.generators]) - self.offset
        return self.current

    def hook_into(self, model: torch.nn.Module) -> None:
        """Become part of ``model`` (so ``.parameters()`` and ``.to()`` see the generators) and
        refresh at the start of each of its forward passes (training, eval and generate)."""
        model.add_module("generated_adapter", self)
        self._hook = model.register_forward_pre_hook(self._before_forward)

    def _before_forward(self, _module: torch.nn.Module, _args: tuple) -> None:
        self.refresh()

    def n_weights(self) -> int:
        return sum(slot.numel for slot in self.slots)

    def release(self) -> None:
        """Collapse: evaluate once and turn every slot back into a plain dense parameter."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        with torch.no_grad():
            self.refresh()
            for slot in self.slots:
                parametrize.remove_parametrizations(slot.module, slot.attr, leave_parametrized=True)
