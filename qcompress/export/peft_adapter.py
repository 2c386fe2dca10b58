"""``peft/``: a LoRA-family run as a standard PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors``).

Users who serve many fine-tunes load one base model and hot-swap adapters (vLLM, TGI, PEFT's
``load_adapter``); what they load is the unmerged adapter, which the merged model has lost. So this
format reads the :class:`~qcompress.methods.base.PeftAdapter` a method keeps in its
:class:`~qcompress.methods.base.Collapsed` and lets PEFT write its own format: the merged model
with the targeted base weights put back, the run's ``LoraConfig`` attached, the run's lora_A /
lora_B (and DoRA magnitudes) loaded, then ``save_pretrained``. For ``qpa-lora`` / ``qpa-dora`` that
is exact, since the generator's output *is* A and B (evaluated once by the collapse).

The adapter is then loaded back onto the unmerged base with plain transformers + peft in a process
where qcompress cannot be imported (:mod:`qcompress.export.peft_reload`), and its logits are
compared with the collapsed model's on the parity prompts: over ``--atol`` nothing is written
(exit 3). Methods whose update is not a LoRA have no ``PeftAdapter`` and are refused (exit 4).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qcompress.errors import CapabilityError, CheckFailed
from qcompress.export.exporter import ExportOptions
from qcompress.export.parity import _prompt_ids, _torch_logits
from qcompress.export.peft_reload import reload_logits
from qcompress.methods.base import Collapsed, PeftAdapter

#: the methods whose collapse keeps a PEFT LoRA/DoRA adapter (named in the refusal)
LORA_METHODS = "lora, dora, qpa-lora and qpa-dora"
#: the unmerged base the reload check loads the adapter onto; removed before the artifact is published
BASE_DIRECTORY = ".peft-base"


def refusal(collapsed: Collapsed, source: dict[str, Any]) -> str | None:
    """Why ``collapsed`` cannot be a PEFT LoRA adapter, or ``None`` when it can."""
    if collapsed.peft_adapter is not None:
        return None
    if source.get("kind") != "run":
        return f"a model spec has no adapter to write; export a run directory of {LORA_METHODS} with --format peft"
    return (f"method {source.get('method')!r} is not a LoRA/DoRA update, so no LoRA server can load it; "
            f"export it with --format safetensors,onnx (runs of {LORA_METHODS} export as peft)")


def unmerged_model(model: torch.nn.Module, adapter: PeftAdapter) -> torch.nn.Module:
    """A copy of the merged ``model`` with the targeted layers' pre-merge weights put back: the run's base."""
    unmerged = copy.deepcopy(model).float()
    result = unmerged.load_state_dict(adapter.base_weights, strict=False)
    if result.unexpected_keys:
        raise CheckFailed(f"the PEFT adapter names base weights the model lacks ({result.unexpected_keys[0]}); report this as a bug")
    return unmerged


def write_adapter(model: torch.nn.Module, adapter: PeftAdapter, out_dir: Path, base_dir: Path) -> dict[str, Any]:
    """PEFT's own ``save_pretrained`` of a plain LoRA PeftModel holding the run's tensors into ``out_dir``;
    the unmerged base goes to ``base_dir``. Returns the config facts for the manifest."""
    from peft import get_peft_model, set_peft_model_state_dict

    writer = get_peft_model(unmerged_model(model, adapter), copy.deepcopy(adapter.config))
    loaded = set_peft_model_state_dict(writer, adapter.state)
    if loaded.unexpected_keys:
        raise CheckFailed(f"PEFT did not take the adapter tensor {loaded.unexpected_keys[0]}; report this as a bug")
    config = writer.peft_config["default"]
    targets = config.target_modules
    if not isinstance(targets, str):  # PEFT keeps a set, written in hash order: sorted, the file is reproducible
        config.target_modules = targets = sorted(targets)
    # False: the embeddings are never changed by the adapter, and "auto" would ask the hub about the base
    writer.save_pretrained(out_dir, save_embedding_layers=False)
    writer.unload().save_pretrained(base_dir)
    return {
        "peft_type": str(config.peft_type.value), "use_dora": bool(config.use_dora), "r": config.r,
        "lora_alpha": config.lora_alpha, "fan_in_fan_out": bool(config.fan_in_fan_out),
        "target_modules": targets,
        "base_model_name_or_path": config.base_model_name_or_path,
    }


class PeftAdapterExporter:
    """``peft/``: adapter_config.json, adapter_model.safetensors and PEFT's README.md, float32."""

    name = "peft"
    directory = "peft"

    def __init__(self) -> None:
        self.adapter: PeftAdapter | None = None

    def prepare(self, collapsed: Collapsed, source: dict[str, Any]) -> None:
        """Take the adapter from before the merge, or refuse in one line (exit 4) before anything is written."""
        reason = refusal(collapsed, source)
        if reason is not None:
            raise CapabilityError(f"cannot export format {self.name!r}: {reason}")
        self.adapter = collapsed.peft_adapter

    def export(self, model: Any, tokenizer: Any, out_dir: Path, options: ExportOptions) -> dict[str, Any]:
        if self.adapter is None:
            raise CapabilityError("the peft exporter needs the run's adapter: export through qcompress.export.artifact.export_artifact")
        base_dir = out_dir.parent / BASE_DIRECTORY
        prompts = _prompt_ids(tokenizer, options.prompts)
        try:
            info = write_adapter(model, self.adapter, out_dir, base_dir)
            reloaded, report = reload_logits(base_dir, out_dir, prompts, base_dir)
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)
        # np.max keeps a NaN difference NaN (Python's max may pass over it), so the gate below refuses it
        worst = float(np.max([np.abs(logits.numpy() - _torch_logits(model, ids)).max() for logits, ids in zip(reloaded, prompts)]))
        if not worst <= options.atol:
            raise CheckFailed(f"PEFT adapter parity failed: max |logit diff| {worst:.3g} after reloading with plain peft "
                              f"> atol {options.atol:g}; nothing was written (raise --atol only if this difference is acceptable)")
        parity = {"max_abs_diff": worst, "atol": options.atol, "prompts": list(options.prompts),
                  "reloaded_with": {"transformers": report["transformers"], "peft": report["peft"]},
                  "qcompress_importable": report["qcompress_importable"]}
        return {"dtype": "float32", **info, "parity": parity}
