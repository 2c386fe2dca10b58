"""``ffa`` / ``qpa-ffa``: feed-forward bottleneck adapters after the MLP block of every decoder layer.

Each layer's MLP output ``y`` becomes ``y + up(relu(down(y)))`` (Houlsby-style, bottleneck width
``adapter.rank``), with ``up`` starting at zero so training starts from the base model. The
adapter is nonlinear, so it cannot be merged into dense weights: collapse keeps it as two small
extra linear layers per block, which the ONNX export traces into the graph. ``qpa-ffa``
generates all four adapter tensors of every layer (down/up weight and bias) from QPA generators
through the same mechanism as ``qpa-lora``.
"""

from __future__ import annotations


import math

import torch
from transformers import PreTrainedModel

from qcompress.errors import InputError
from qcompress.methods.base import AdaptedModel, Collapsed, Method, check_state_fits
from qcompress.methods.generated import TensorSlot
from qcompress.methods.peft_lora import lora_budget
from qcompress.methods.qpa_lora import QpaLoraAdapted
from qcompress.methods.run_config import RunConfig


#: why the Hugging Face directory format is refused for a model carrying these adapters
NOT_SAFETENSORS = "feed-forward adapters are extra layers plain transformers cannot load; export --format onnx"


class BottleneckAdapter(torch.nn.Module):
    """``y -> y + up(relu(down(y)))``; ``up`` is zero at initialisation (an identity map)."""

    def __init__(self, hidden: int, bottleneck: int, generator: torch.Generator):
        super().__init__()
        self.down = torch.nn.Linear(hidden, bottleneck)
        self.up = torch.nn.Linear(bottleneck, hidden)
        bound = 1.0 / math.sqrt(hidden)  # PyTorch's nn.Linear range, drawn from a seeded generator
        with torch.no_grad():
            self.down.weight.uniform_(-bound, bound, generator=generator)
            self.down.bias.uniform_(-bound, bound, generator=generator)
            self.up.weight.zero_()
            self.up.bias.zero_()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.up(torch.relu(self.down(y)))


class MlpWithAdapter(torch.nn.Module):
    """A decoder layer's MLP followed by its bottleneck adapter (the layer's own residual stays outside)."""

    def __init__(self, mlp: torch.nn.Module, adapter: BottleneckAdapter):
        super().__init__()
        self.mlp = mlp
        self.adapter = adapter

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.adapter(self.mlp(*args, **kwargs))


def mlp_blocks(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every decoder layer's ``mlp`` (GPT-2 ``transformer.h.i.mlp``, Llama ``model.layers.i.mlp``)."""
    return [(name, module) for name, module in model.named_modules() if name.split(".")[-1] == "mlp"]


def attach_adapters(model: PreTrainedModel, config: RunConfig) -> dict[str, BottleneckAdapter]:
    """Freeze ``model`` and put a seeded bottleneck adapter after each MLP; returns them by MLP name."""
    blocks = mlp_blocks(model)
    if not blocks:
        raise InputError(f"{type(model).__name__} has no '*.mlp' blocks to put feed-forward adapters after: use a LoRA method")
    model.requires_grad_(False)
    generator = torch.Generator().manual_seed(config.seed)
    adapters = {}
    for name, mlp in blocks:
        adapters[name] = BottleneckAdapter(model.config.hidden_size, config.adapter.rank, generator)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, MlpWithAdapter(mlp, adapters[name]))
    return adapters


def collapsed_with_adapters(model: PreTrainedModel) -> Collapsed:
    """The model with its adapters kept as layers, in eval mode; refused by the Hugging Face directory format."""
    model.eval()
    return Collapsed(model, unsupported_formats={"safetensors": NOT_SAFETENSORS})


def adapter_weights(adapters: dict[str, BottleneckAdapter]) -> int:
    return sum(p.numel() for adapter in adapters.values() for p in adapter.parameters())


class FfaAdapted(AdaptedModel):
    """Classical bottleneck adapters: their parameters are trained directly and kept at collapse."""

    def __init__(self, model: PreTrainedModel, config: RunConfig):
        self.lora = lora_budget(model, config)
        self.adapters = attach_adapters(model, config)
        self.model = model

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for adapter in self.adapters.values() for p in adapter.parameters()]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{key}": t.detach().contiguous() for name, a in self.adapters.items() for key, t in a.state_dict().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        check_state_fits(state, self.trainable_state(), "feed-forward adapter")
        with torch.no_grad():
            for name, adapter in self.adapters.items():
                for key, tensor in adapter.state_dict(keep_vars=True).items():
                    tensor.copy_(state[f"{name}.{key}"])

    def counts(self) -> dict[str, int]:
        n = adapter_weights(self.adapters)
        return {"trainable": n, "adapter_weights": n, "lora_equivalent": self.lora}

    def collapse(self) -> Collapsed:
        return collapsed_with_adapters(self.model)


class QpaFfaAdapted(QpaLoraAdapted):
    """Every adapter tensor generated (``up`` zero at start); collapse leaves plain dense adapter layers."""

    def __init__(self, model: PreTrainedModel, config: RunConfig):
        self.lora = lora_budget(model, config)
        self.adapters = attach_adapters(model, config)
        super().__init__(model, config)

    def adapter_layers(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
        return list(self.adapters.items())

    def layer_slots(self, name: str, layer: torch.nn.Module, config: RunConfig) -> list[TensorSlot]:
        # up must be exactly zero at step 0 whatever zero_init says: the adapter is then the identity
        return [
            TensorSlot(f"{name}.down.weight", layer.down, rank_axis=0),
            TensorSlot(f"{name}.down.bias", layer.down, attr="bias"),
            TensorSlot(f"{name}.up.weight", layer.up, zero_at_start=True, rank_axis=1),
            TensorSlot(f"{name}.up.bias", layer.up, attr="bias", zero_at_start=True),
        ]

    def counts(self) -> dict[str, int]:
        return {**super().counts(), "lora_equivalent": self.lora}

    def collapse(self) -> Collapsed:
        self.generated.release()
        del self.model.generated_adapter  # the released generator is no part of the deployed model
        return collapsed_with_adapters(self.model)


class FfaMethod(Method):
    name = "ffa"
    default_lr = 1e-3

    def attach(self, model: PreTrainedModel, config: RunConfig) -> FfaAdapted:
        return FfaAdapted(model, config)


class QpaFfaMethod(Method):
    name = "qpa-ffa"
    default_lr = 1e-3
    state_file = "generator.safetensors"

    def attach(self, model: PreTrainedModel, config: RunConfig) -> QpaFfaAdapted:
        return QpaFfaAdapted(model, config)
