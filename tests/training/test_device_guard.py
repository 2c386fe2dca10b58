"""Device bugs caught without a GPU: a training step run on PyTorch's ``meta`` device.

CI has no GPU, yet the most common GPU bug (a constant built on the CPU inside a step: "Expected
all tensors to be on the same device, cuda:0 and cpu") must fail CI. On the ``meta`` device every
tensor has a shape and no data, and an op that mixes a meta tensor with a CPU tensor raises just
as CUDA would. A dispatch mode also records any op that reads or makes a CPU tensor during the
step, which on a GPU would be a host round-trip (a tensor created on the host and copied over)
even where it does not crash.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from qcompress import registry
from qcompress.methods import get_method
from qcompress.models import load_model
from qcompress.training.distributed import Processes
from qcompress.training.precision import Precision
from qcompress.training.step import TrainStep
from fit_helpers import tiny_config

META = torch.device("meta")


class HostTensorSpy(TorchDispatchMode):
    """Records every op whose inputs or outputs include a CPU tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.host_ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in tree_flatten((args, kwargs, out))[0]):
            self.host_ops.append(str(func))
        return out


def host_ops_of_a_step(model_dir, corpus_dir, method: str, **overrides) -> list[str]:
    """Attach ``method``, move everything to ``meta`` and run one forward+backward of the fit's step."""
    config = tiny_config(model_dir, corpus_dir, method=method, **overrides)
    adapted = get_method(method).attach(load_model(str(model_dir)).model, config)
    adapted.to(META)
    params = adapted.trainable_parameters()
    assert params and all(p.device == META for p in params)
    step = TrainStep(adapted.model, params, torch.optim.SGD(params, lr=0.1), None, Precision("fp32", META), Processes(), 1, 0.0)
    batch = torch.zeros(2, 16, dtype=torch.long, device=META)
    spy = HostTensorSpy()
    with spy:
        loss = step.backward(lambda micro: batch)
    assert loss.device == META
    assert all(p.grad is not None and p.grad.device == META for p in params)
    return spy.host_ops


BUILT_IN = ["lora", "qpa-lora", "dora", "qpa-dora", "ffa", "qpa-ffa", "prefix", "qpa-prefix", "qtha"]


def test_every_built_in_method_is_guarded():
    assert set(BUILT_IN) <= set(registry.names("method"))


@pytest.mark.parametrize("method", BUILT_IN)
def test_a_training_step_touches_no_host_tensor(tiny_model_dir, corpus_dir, method):
    assert host_ops_of_a_step(tiny_model_dir, corpus_dir, method) == []


@pytest.mark.parametrize(
    "method, overrides",
    [
        ("qpa-lora", {"qpa.backend": "classical"}),
        ("qpa-lora", {"adapter.generator_scope": "layer"}),
        ("qtha", {"method_config.simulator": "quimb"}),
    ],
    ids=["classical-backend", "layer-scope", "qtha-quimb"],
)
def test_variants_touch_no_host_tensor(tiny_llama_dir, corpus_dir, method, overrides):
    assert host_ops_of_a_step(tiny_llama_dir, corpus_dir, method, **overrides) == []


def test_the_guard_sees_a_constant_left_on_the_host(tiny_llama_dir, corpus_dir):
    """The guard itself: a circuit constant kept outside the module tree (the bug this file is
    for) is reported, so a passing guard means something."""
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora")
    adapted = get_method("qpa-lora").attach(load_model(str(tiny_llama_dir)).model, config)
    generator = adapted.generated.generators[0]
    signs = generator.chunk_inputs
    adapted.to(META)
    generator.chunk_inputs = signs  # put back a CPU copy: as if it were a plain attribute, not a buffer
    params = adapted.trainable_parameters()
    step = TrainStep(adapted.model, params, torch.optim.SGD(params, lr=0.1), None, Precision("fp32", META), Processes(), 1, 0.0)
    batch = torch.zeros(2, 16, dtype=torch.long, device=META)
    with pytest.raises(RuntimeError, match="device"):
        with HostTensorSpy():
            step.backward(lambda micro: batch)
