"""How generated chunks land on an adapter's tensors: the flat layout and one chunk per rank-one factor."""

from __future__ import annotations

import pytest
import torch

from fit_helpers import tiny_config
from qcompress.errors import InputError
from qcompress.methods import get_method
from qcompress.methods.peft_lora import ADAPTER, lora_layers
from qcompress.models import load_model


def _attach(model_dir, corpus_dir, **overrides):
    config = tiny_config(model_dir, corpus_dir, method="qpa-lora", **overrides)
    return get_method("qpa-lora").attach(load_model(str(model_dir)).model, config)


def test_factors_layout_gives_each_row_of_a_and_column_of_b_its_own_chunk(tiny_gpt2_dir, corpus_dir):
    adapted = _attach(tiny_gpt2_dir, corpus_dir, **{"qpa.layout": "factors", "qpa.n_mlp": 128})
    generated = adapted.generated
    with torch.no_grad():
        for p in adapted.trainable_parameters():  # away from the start, where B is exactly zero
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
        chunks = (generated.generators[0]() - generated.offset).view(-1, 128)
        generated.refresh()
    start = 0
    for _, layer in lora_layers(adapted.model):  # 2 layers of c_attn 32 -> 96 at rank 4: 4 chunks for A, 4 for B
        a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
        assert a.shape == (4, 32) and b.shape == (96, 4)
        torch.testing.assert_close(a, chunks[start : start + 4, :32], rtol=0, atol=0)
        torch.testing.assert_close(b, chunks[start + 4 : start + 8, :96].T, rtol=0, atol=0)
        start += 8
    assert chunks.shape[0] == start == generated.generators[0].n_chunks
    assert adapted.counts()["adapter_weights"] == 2 * 4 * (32 + 96)  # padding is not counted as adapter weights


def test_factors_layout_starts_at_dw_zero_and_refuses_too_narrow_chunks(tiny_gpt2_dir, corpus_dir):
    adapted = _attach(tiny_gpt2_dir, corpus_dir, **{"qpa.layout": "factors", "qpa.n_mlp": 96})
    assert all((layer.lora_B[ADAPTER].weight == 0).all() for _, layer in lora_layers(adapted.model))
    with pytest.raises(InputError, match=r"lora_B \(96 weights\) one chunk of n_mlp=64: set --n-mlp to at least 96"):
        _attach(tiny_gpt2_dir, corpus_dir, **{"qpa.layout": "factors", "qpa.n_mlp": 64})


def test_flat_layout_is_the_concatenation(tiny_gpt2_dir, corpus_dir):
    adapted = _attach(tiny_gpt2_dir, corpus_dir)
    generated = adapted.generated
    with torch.no_grad():
        flat = generated.generators[0]() - generated.offset
    parts = [t.reshape(-1) for _, layer in lora_layers(adapted.model) for t in (layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight)]
    torch.testing.assert_close(torch.cat(parts), flat, rtol=0, atol=0)
