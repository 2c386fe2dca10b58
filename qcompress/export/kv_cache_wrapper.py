"""A torch module that exposes a Hugging Face causal LM with flat KV-cache tensors.

ONNX graphs take and return plain tensors, while transformers models take a ``Cache`` object.
This wrapper rebuilds a ``DynamicCache`` from ``past_key_values.{i}.key|value`` inside ``forward``
and flattens the updated cache into ``present.{i}.key|value``, so one exported graph serves the
first step (past length 0) and every later step.
"""

from __future__ import annotations

from typing import Any

import torch


def text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def cache_geometry(model: Any) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of the model's attention cache."""
    config = text_config(model)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


def input_names(layers: int) -> list[str]:
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past]


def output_names(layers: int) -> list[str]:
    present = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return ["logits", *present]


class KvCacheDecoder(torch.nn.Module):
    """``forward(input_ids, attention_mask, position_ids, *past) -> (logits, *present)``."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.layers = cache_geometry(model)[0]

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for layer in range(self.layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)
