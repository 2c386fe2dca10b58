"""qcompress.training.device: which device a fit runs on, and one-line errors for the ones it cannot."""

from __future__ import annotations

import pytest
import torch

from qcompress.errors import InputError
from qcompress.training.device import resolve_device


@pytest.mark.parametrize(("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device("cpu") == torch.device("cpu")  # always there


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
