"""qcompress.export.parity: the gate on ONNX Runtime against PyTorch logits."""

from __future__ import annotations

import math

import pytest

from qcompress.errors import CheckFailed
from qcompress.export.parity import parity_holds, require_parity


def test_parity_within_the_tolerance_passes_and_beyond_it_or_non_finite_fails():
    require_parity({"no_cache": 1e-5, "cache": 1e-4}, atol=1e-4)
    with pytest.raises(CheckFailed, match=r"no-cache 1e-05, cache 0.0002 > atol 0.0001; nothing was written"):
        require_parity({"no_cache": 1e-5, "cache": 2e-4}, atol=1e-4)
    with pytest.raises(CheckFailed, match="cache nan"):
        require_parity({"no_cache": 0.0, "cache": math.nan}, atol=1.0)


def test_parity_holds_only_when_every_difference_is_finite_and_within():
    assert parity_holds({"no_cache": 0.0, "cache": 1e-4}, 1e-4)
    assert not parity_holds({"no_cache": math.nan, "cache": 0.0}, 1.0)  # max(nan, 0.0) would be nan, max(0.0, nan) 0.0
    assert not parity_holds({"no_cache": 0.0, "cache": math.inf}, 1.0)
