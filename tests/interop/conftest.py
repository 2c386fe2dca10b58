"""Artifacts the interop tests hand to outside readers (ONNX Runtime as Optimum drives it, transformers 4.57).

``merged_artifacts`` are the suite's tiny GPT-2 and Llama exported as ``model/`` only (no ONNX: cheap);
the same source models' ONNX decoders come from the shared ``onnx_artifacts`` fixture. ``rope_llama`` adds
a tiny Llama whose RoPE is not transformers' default (theta 50000 with llama3 scaling): on the default
RoPE a reader that ignored the rope fields would still get the right logits, so only this one can catch it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROPE = {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 32}


def export_model_dir(model_dir: Path, out: Path) -> Path:
    """Export a plain model directory as an artifact holding model/ only; returns the artifact."""
    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source

    loaded = load_source(str(model_dir))
    export_artifact(loaded.model, loaded.tokenizer, out, source=loaded.description, formats=["safetensors"])
    return out


@pytest.fixture(scope="session")
def rope_llama_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    """The suite's tiny Llama geometry and tokenizer with llama3-scaled RoPE, theta 50000, larger fresh weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    target = tmp_path_factory.mktemp("rope-llama")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tiny_llama_dir / name, target / name)
    config = AutoConfig.from_pretrained(tiny_llama_dir)
    config.rope_parameters = dict(ROPE)
    config.initializer_range = 0.2  # the default 0.02 leaves logits so flat that RoPE barely moves them
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(config).save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def merged_artifacts(tmp_path_factory, tiny_gpt2_dir, tiny_llama_dir, rope_llama_dir) -> dict[str, Path]:
    """Artifacts with model/ only: "gpt2", "llama" (the onnx_artifacts sources) and "rope-llama"."""
    sources = {"gpt2": tiny_gpt2_dir, "llama": tiny_llama_dir, "rope-llama": rope_llama_dir}
    return {kind: export_model_dir(path, tmp_path_factory.mktemp(f"merged-{kind}") / "artifact")
            for kind, path in sources.items()}
