"""The deployed form of prefix tuning: constant past keys/values every forward pass starts from.

Prefix tuning cannot be merged into weights: its trained tensor *is* P extra positions of keys and
values in every attention layer. Collapse therefore returns the unchanged base model with a
:class:`ConstantPrefix` installed as forward hooks, which make ``model(...)`` behave exactly like
PEFT's prefix-tuned model while keeping the plain call signature every exporter relies on:

* the prefix is prepended to whatever cache the caller passes (none, or its own past tokens);
* the attention mask gets P leading ones and explicit ``position_ids`` are shifted by P (PEFT's
  model sees the prefix as P past tokens, so real tokens start at position P);
* the returned cache has the prefix cut off again, so a caller's cache only ever holds its own
  tokens, and the ONNX graph traced through these hooks (see
  ``qcompress.export.kv_cache_wrapper.KvCacheDecoder``) has the prefix as constants with the
  usual inputs and outputs: ONNX Runtime and qcompress' runtime need to know nothing about it.

The same tensor is written next to the Hugging Face weights as a PEFT prefix-tuning adapter
(``model/prefix/``), which plain ``peft`` loads without qcompress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qcompress.errors import CheckFailed

#: subdirectory of the exported model/ directory holding the PEFT prefix adapter
PREFIX_DIRECTORY = "prefix"
#: PrefixTuningConfig fields that define the adapter (the rest PEFT fills in from the base model)
PREFIX_CONFIG_KEYS = ("task_type", "num_virtual_tokens", "prefix_projection", "encoder_hidden_size")
#: the reloaded PEFT model and the hooked model run the same float32 operations
PEFT_RELOAD_ATOL = 1e-4


class ConstantPrefix:
    """P virtual tokens of keys and values per layer, in PEFT's layout (P, layers * 2 * kv_heads * head_dim)."""

    def __init__(self, embedding: torch.Tensor, peft_config: dict[str, Any], layers: int, kv_heads: int) -> None:
        self.embedding = embedding.detach().clone()
        self.peft_config = peft_config
        self.tokens = embedding.shape[0]
        # (P, 2L, h, d) -> per layer (1, h, P, d) keys (even rows) and values (odd rows), as PEFT's get_prompt
        split = self.embedding.view(self.tokens, 2 * layers, kv_heads, -1).permute(1, 2, 0, 3)
        self.keys = [split[2 * layer].unsqueeze(0).contiguous() for layer in range(layers)]
        self.values = [split[2 * layer + 1].unsqueeze(0).contiguous() for layer in range(layers)]

    def install(self, model: torch.nn.Module) -> None:
        """Hook into ``model`` so every forward pass sees the prefix (and stays a plain HF model otherwise)."""
        model.register_forward_pre_hook(self._before, with_kwargs=True)
        model.register_forward_hook(self._after, with_kwargs=True)

    def _before(self, model: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        from transformers import DynamicCache

        input_ids = kwargs.get("input_ids", args[0] if args else None)
        batch = input_ids.shape[0]
        past = kwargs.get("past_key_values")
        # full layers, never built from the config: a sliding-window layer (Gemma 3) would drop the oldest
        # keys, and _after would then cut real tokens instead of the prefix; the model's own sliding mask
        # applies the window to a full cache
        cache = DynamicCache()
        for layer, (keys, values) in enumerate(zip(self.keys, self.values)):
            keys, values = keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1)
            if past is not None and len(past.layers) > layer and past.layers[layer].keys is not None:
                keys = torch.cat([keys, past.layers[layer].keys], dim=2)
                values = torch.cat([values, past.layers[layer].values], dim=2)
            cache.update(keys, values, layer)
        kwargs["past_key_values"] = cache
        if kwargs.get("attention_mask") is not None:
            mask = kwargs["attention_mask"]
            kwargs["attention_mask"] = torch.cat([mask.new_ones(batch, self.tokens), mask], dim=1)
        if kwargs.get("position_ids") is not None:
            kwargs["position_ids"] = kwargs["position_ids"] + self.tokens
        return args, kwargs

    def _after(self, _model: torch.nn.Module, _args: tuple, _kwargs: dict[str, Any], output: Any) -> Any:
        cache = getattr(output, "past_key_values", None)
        if cache is not None:
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys[:, :, self.tokens :], layer.values[:, :, self.tokens :]
        return output

    def save_as_peft_adapter(self, model: torch.nn.Module, model_dir: Path) -> dict[str, Any]:
        """Write ``model_dir/prefix`` as a PEFT prefix-tuning adapter and prove plain PEFT reproduces ``model``.

        PEFT writes its own format (via ``save_pretrained`` on the reloaded base), then the adapter is
        loaded back onto a fresh copy of the saved base model and its logits compared with ``model``
        (base + installed prefix), so the documented loading recipe is checked on every export."""
        from peft import PeftModel, PrefixTuningConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        out = model_dir / PREFIX_DIRECTORY
        config = {k: v for k, v in self.peft_config.items() if k in PREFIX_CONFIG_KEYS}
        writer = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), PrefixTuningConfig(**config))
        with torch.no_grad():
            writer.prompt_encoder["default"].embedding.weight.copy_(self.embedding)
        writer.save_pretrained(out)
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), out).eval()
        ids = torch.arange(min(8, model.config.vocab_size)).unsqueeze(0)
        with torch.no_grad():
            difference = float((reloaded(input_ids=ids).logits - model(input_ids=ids).logits).abs().max())
        if not difference <= PEFT_RELOAD_ATOL:  # a NaN difference fails too
            raise CheckFailed(f"the PEFT prefix adapter in {out} reproduces the model only to {difference:.2e}; report this as a bug")
        return {"prefix_tokens": self.tokens, "prefix_directory": f"{model_dir.name}/{PREFIX_DIRECTORY}",
                "peft_reload_max_abs_diff": difference}
