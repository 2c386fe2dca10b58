"""qcompress.training.device: which device a fit runs on, and one-line errors for the ones it cannot."""

from __future__ import annotations

import pytest
import torch

from qcompress.errors import InputError
from qcompress.training.device import resolve_device


def test_cpu_is_always_there_and_auto_picks_an_available_device():
    assert resolve_device("cpu") == torch.device("cpu")
    chosen = resolve_device("auto")
    assert chosen.type in {"cpu", "cuda", "mps"}
    assert resolve_device(str(chosen)) == chosen  # what auto picks is a device that resolves on its own


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("banana", "unknown --device 'banana': use auto, cpu, cuda, cuda:N or mps"),
        ("cuda:4096", "--device cuda:4096 is not available on this machine"),  # no machine has 4,097 GPUs
        ("meta", "--device meta is not available on this machine"),  # a real torch device, not one to train on
    ],
)
def test_an_unknown_or_absent_device_is_one_clear_error(name, message):
    with pytest.raises(InputError, match=message):
        resolve_device(name)
