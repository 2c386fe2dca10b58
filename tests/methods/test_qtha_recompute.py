"""qcompress.methods.qtha.recompute: keep or recompute the circuits' intermediates, the same gradients either way."""

from __future__ import annotations

import pytest
import torch

from qcompress.methods import get_method
from qcompress.methods.qtha.circuit import QthaStatevector
from qcompress.methods.qtha.recompute import KEEP_SHARE, RecomputePolicy, kept_bytes
from qcompress.models import load_model

from fit_helpers import tiny_config


def saved_bytes(run) -> int:
    """Bytes autograd keeps for backward while ``run()`` builds its graph."""
    sizes: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        sizes.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(sizes)


@pytest.mark.parametrize(
    "n_qubits,depth,tokens,members",
    [(8, 8, 128, 2), (8, 2, 32, 1), (5, 3, 64, 2), (9, 2, 16, 3), (12, 1, 4, 1), (11, 2, 8, 2), (1, 1, 100, 1), (3, 2, 10, 2)],
)
def test_the_estimate_bounds_what_a_circuit_keeps(n_qubits, depth, tokens, members):
    circuit = QthaStatevector(n_qubits, depth)
    weights = torch.randn(members, circuit.n_weights, requires_grad=True)
    data = torch.randn(tokens, members, n_qubits, requires_grad=True)
    kept = saved_bytes(lambda: circuit(weights, data))
    estimate = kept_bytes(tokens, members, n_qubits, depth)
    assert kept <= estimate  # an upper bound at every size
    if tokens >= 64 and n_qubits >= 5:  # and not a loose one at the sizes training runs
        assert kept > 0.3 * estimate


def test_auto_keeps_what_fits_a_quarter_of_free_memory_and_asks_once_per_shape():
    probes: list[torch.device] = []
    need = kept_bytes(512, 60, 8, 8)

    def probe(device: torch.device) -> int:
        probes.append(device)
        return int(need / KEEP_SHARE) + 1

    policy = RecomputePolicy("auto", layers=60, n_qubits=8, depth=8, probe=probe)
    cpu = torch.device("cpu")
    assert not policy.recompute(512, cpu)  # fits: kept
    assert policy.recompute(1024, cpu)  # twice the tokens do not: recomputed
    assert not policy.recompute(512, cpu) and policy.recompute(1024, cpu)
    assert probes == [cpu, cpu]  # one query per batch shape, none in later steps
    assert RecomputePolicy("always", 1, 2, 1, probe=probe).recompute(1, cpu)
    assert not RecomputePolicy("never", 10**6, 20, 100, probe=probe).recompute(10**6, cpu)
    assert len(probes) == 2


def _gradients(model_dir, corpus_dir, recompute: str) -> tuple[dict[str, torch.Tensor], int]:
    config = tiny_config(model_dir, corpus_dir, method="qtha",
                         **{"adapter.rank": 3, "method_config.inner": 16, "method_config.recompute": recompute})
    adapted = get_method("qtha").attach(load_model(config.model).model, config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the zero start (TT_B = 0 gives the circuit no gradient)
        for parameter in adapted.trainable_parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    ids = torch.randint(0, 300, (2, 12), generator=generator)
    kept = saved_bytes(lambda: adapted.model(input_ids=ids, labels=ids).loss.backward())
    named = dict(adapted.model.named_parameters())
    return {name: named[name].grad for name in adapted.trainable_state()}, kept


def test_keeping_or_recomputing_gives_bitwise_the_same_gradients(tiny_model_dir, corpus_dir):
    recomputed, memory_recomputed = _gradients(tiny_model_dir, corpus_dir, "always")
    kept, memory_kept = _gradients(tiny_model_dir, corpus_dir, "never")
    assert memory_kept > memory_recomputed  # the choice reached the layers
    assert recomputed.keys() == kept.keys()
    assert all(torch.equal(recomputed[name], kept[name]) for name in kept)
    assert any(name.endswith("angles") and kept[name].abs().sum() > 0 for name in kept)
