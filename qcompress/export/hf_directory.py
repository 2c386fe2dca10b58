"""Write the model as a plain Hugging Face directory (safetensors) that loads without qcompress.

``save_pretrained`` already writes safetensors with fixed metadata (``{"format": "pt"}``) and no
timestamps, so the bytes depend only on the weights. Two things are made explicit here because
they silently break a reload: a cast to a smaller dtype must not touch the caller's model (the ONNX
export that follows needs float32), and a config that says ``tie_word_embeddings`` while the merged
``lm_head`` differs from the embedding would lose the head on save, so the tie is dropped then.
The files are then made readable by transformers 4.57 too (:mod:`qcompress.export.transformers4`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from qcompress.errors import CheckFailed
from qcompress.export.exporter import ExportOptions
from qcompress.export.transformers4 import make_transformers4_readable
from qcompress.models import text_config

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
MAX_SHARD_SIZE = "2GB"


def untie_if_diverged(model: Any) -> bool:
    """Set ``tie_word_embeddings=False`` when the output head no longer equals the input embedding.

    Returns whether the model is (still) tied, for the manifest.
    """
    config = text_config(model)
    if not getattr(config, "tie_word_embeddings", False):
        return False
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or head.weight is embedding.weight or torch.equal(head.weight, embedding.weight):
        return True
    config.tie_word_embeddings = False
    head.weight = torch.nn.Parameter(head.weight.detach().clone())
    return False


def _check_reload(saved: Any, out_dir: Path) -> None:
    """Reload the directory with plain transformers and require bit-identical parameters."""
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=saved.dtype)
    expected = dict(saved.named_parameters(remove_duplicate=False))
    for name, tensor in reloaded.named_parameters(remove_duplicate=False):
        if name in expected and not torch.equal(tensor, expected[name]):
            raise CheckFailed(f"saved weights for {name} do not reload identically from {out_dir}; report this as a bug")


class SafetensorsExporter:
    """``model/``: config.json, model.safetensors (sharded above 2 GB), generation config, tokenizer."""

    name = "safetensors"
    directory = "model"

    def export(self, model: Any, tokenizer: Any, out_dir: Path, options: ExportOptions) -> dict[str, Any]:
        saved = copy.deepcopy(model).to(TORCH_DTYPES[options.dtype])
        tied = untie_if_diverged(saved)
        saved.config.dtype = options.dtype
        saved.save_pretrained(out_dir, max_shard_size=MAX_SHARD_SIZE)
        tokenizer.save_pretrained(out_dir)
        make_transformers4_readable(out_dir)
        _check_reload(saved, out_dir)
        return {"dtype": options.dtype, "tie_word_embeddings": tied}
