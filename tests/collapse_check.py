"""Check that collapsing an adapted model into plain weights leaves its outputs unchanged."""

from __future__ import annotations

import torch


def assert_collapse_matches_unmerged(adapted, ids: torch.Tensor) -> torch.nn.Module:
    """Collapse ``adapted`` and compare its logits with the unmerged model's, both in float64.

    In float32 the unmerged forward of a tiny model with a perturbed adapter is already ~1e-5 away
    from the exact logits, and how far depends on the CPU's kernels (CI failed on one machine at
    1.7e-5 against a 1e-5 bound). In float64 a correct merge agrees to ~1e-14, so a 1e-10 bound
    tests the merge itself, on any machine. Returns the collapsed model (``collapse().model``).
    """
    adapted.model.double().eval()
    with torch.no_grad():
        unmerged = adapted.model(input_ids=ids).logits
    merged = adapted.collapse().model
    assert not [n for n, _ in merged.named_parameters() if any(part in n for part in ("lora", "generat", "vera_"))]
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, unmerged, atol=1e-10, rtol=0)
    return merged
