"""LoRA and QPA-LoRA attached to tiny GPT-2 (Conv1D) and tiny Llama (Linear) models."""

from __future__ import annotations

import pytest
import torch

from collapse_check import assert_collapse_matches_unmerged
from fit_helpers import tiny_config
from qcompress.methods import get_method
from qcompress.models import load_model


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def _ids(vocab: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(0))


def test_lora_counts_and_collapse_match_unmerged(tiny_model_dir, corpus_dir):
    config = tiny_config(tiny_model_dir, corpus_dir, method="lora")
    loaded = load_model(str(tiny_model_dir))
    adapted = get_method("lora").attach(loaded.model, config)
    for layer_param in adapted.trainable_parameters():  # make dW non-zero so the merge is really tested
        torch.nn.init.normal_(layer_param, std=0.05)
    counts = adapted.counts()
    assert counts["trainable"] == counts["lora_equivalent"] == counts["adapter_weights"]
    ids = _ids(loaded.model.config.vocab_size)
    assert_collapse_matches_unmerged(adapted, ids)


def test_lora_count_is_rank_times_fan_in_plus_fan_out(tiny_gpt2_dir, corpus_dir):
    config = tiny_config(tiny_gpt2_dir, corpus_dir, method="lora")
    adapted = get_method("lora").attach(load_model(str(tiny_gpt2_dir)).model, config)
    # tiny GPT-2: 2 layers of c_attn 32 -> 96, rank 4
    assert adapted.counts()["trainable"] == 2 * 4 * (32 + 96)


def test_qpa_lora_starts_at_base_model_and_trains_only_the_generator(tiny_model_dir, corpus_dir):
    config = tiny_config(tiny_model_dir, corpus_dir, method="qpa-lora")
    base = load_model(str(tiny_model_dir)).model
    ids = _ids(base.config.vocab_size)
    reference = _logits(base, ids)
    adapted = get_method("qpa-lora").attach(load_model(str(tiny_model_dir)).model, config)
    adapted.model.eval()
    torch.testing.assert_close(_logits(adapted.model, ids), reference, atol=1e-6, rtol=0)
    trainable = {id(p) for p in adapted.trainable_parameters()}
    assert trainable == {id(p) for p in adapted.model.parameters() if p.requires_grad}
    adapted.model.train()
    adapted.model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in adapted.trainable_parameters())
    assert any(p.grad.abs().sum() > 0 for p in adapted.trainable_parameters())
    counts = adapted.counts()
    assert counts["trainable"] == sum(p.numel() for p in adapted.trainable_parameters())


def test_qpa_lora_without_zero_init_changes_the_model(tiny_llama_dir, corpus_dir):
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora", **{"adapter.zero_init": False})
    base = load_model(str(tiny_llama_dir)).model
    ids = _ids(base.config.vocab_size)
    adapted = get_method("qpa-lora").attach(load_model(str(tiny_llama_dir)).model, config)
    adapted.model.eval()
    assert (_logits(adapted.model, ids) - _logits(base, ids)).abs().max() > 1e-4


def test_generator_runs_once_per_forward_however_many_layers(tiny_llama_dir, corpus_dir):
    config = tiny_config(tiny_llama_dir, corpus_dir, method="qpa-lora")
    adapted = get_method("qpa-lora").attach(load_model(str(tiny_llama_dir)).model, config)
    generator = adapted.generated.generators[0]
    calls = []
    generator.register_forward_hook(lambda *_: calls.append(1))
    ids = _ids(adapted.model.config.vocab_size)
    adapted.model(input_ids=ids)
    assert len(calls) == 1  # 2 layers x (q_proj, v_proj) x (A, B) slots, one evaluation


def test_layer_scope_has_one_generator_per_adapted_layer(tiny_model_dir, corpus_dir):
    config = tiny_config(tiny_model_dir, corpus_dir, method="qpa-lora", **{"adapter.generator_scope": "layer"})
    adapted = get_method("qpa-lora").attach(load_model(str(tiny_model_dir)).model, config)
    assert len(adapted.generated.generators) == 2 * (1 if "gpt2" in str(tiny_model_dir) else 2)


@pytest.mark.parametrize("method", ["lora", "qpa-lora", "ffa", "qtha"])
def test_a_state_of_another_shape_is_refused_naming_the_first_mismatch(tiny_llama_dir, corpus_dir, method):
    from qcompress.errors import InputError

    def attached(rank: int):
        config = tiny_config(tiny_llama_dir, corpus_dir, method=method, **{"adapter.rank": rank, "qpa.n_mlp": 16 * rank})
        return get_method(method).attach(load_model(str(tiny_llama_dir)).model, config)

    saved = attached(4).trainable_state()
    with pytest.raises(InputError, match=r"does not fit this configuration \(first mismatch: .+\): .*re-run qcompress fit"):
        attached(2).load_trainable_state(saved)
