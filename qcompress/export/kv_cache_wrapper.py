"""A torch module that exposes a Hugging Face causal LM with flat KV-cache tensors.

ONNX graphs take and return plain tensors, while transformers models take a ``Cache`` object.
This wrapper rebuilds a ``DynamicCache`` from ``past_key_values.{i}.key|value`` inside ``forward``
and flattens the updated cache into ``present.{i}.key|value``, so one exported graph serves the
first step (past length 0) and every later step. Every layer's past is the full sequence, sliding-window
layers included, so one ``attention_mask`` fits all layers.
"""

from __future__ import annotations

from typing import Any

import torch

from qcompress.models import cache_geometry


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

        # A cache of full layers, never one built from the config: for a model with sliding-window
        # layers (Gemma 3) that would drop keys older than the window, so ``present`` would be shorter
        # than the attention mask the runtime feeds next. Every layer keeps every token and the window
        # is applied by the model's own sliding mask (checked step by step against a full forward).
        cache = DynamicCache()
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
