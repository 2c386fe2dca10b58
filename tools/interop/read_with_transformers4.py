"""Read a qcompress artifact folder with whatever transformers this interpreter has (a 4.57 env).

Run by tests/interop/test_transformers4_reader.py inside .venv-tf457 (tools/interop/make_reader_env.sh),
where qcompress is not installed: what a serving stack pinned to transformers 4.x sees. For model/ it
writes logits for fixed ids to OUT/logits.npy; for any folder (onnx/ too, which Optimum reads with 4.x)
it writes what the reader understood (version, RoPE, tying, missing/unexpected weights, KV geometry,
tokenizer ids) to OUT/report.json. It judges nothing itself: the test compares.

Usage: python read_with_transformers4.py FOLDER OUT_DIR IDS_JSON SENTENCE
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig


def read_weights(folder: str, ids: list[list[int]], out: Path) -> dict:
    model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    with torch.no_grad():
        np.save(out / "logits.npy", model.eval()(input_ids=torch.tensor(ids)).logits.numpy())
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    return {
        "model_class": type(model).__name__,
        "dtype": str(model.dtype),
        "head_shares_embedding": head.weight.data_ptr() == embedding.weight.data_ptr(),
        "missing_keys": sorted(info["missing_keys"]),
        "unexpected_keys": sorted(info["unexpected_keys"]),
        "mismatched_keys": [list(map(str, item)) for item in info["mismatched_keys"]],
    }


def read_tokenizer(folder: str, sentence: str) -> dict:
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as error:  # reported, not raised: the test decides what matters
        return {"tokenizer_error": f"{type(error).__name__}: {error}"}
    return {
        "tokenizer_class": type(tokenizer).__name__,
        "tokenizer_ids": tokenizer(sentence)["input_ids"],
        "tokenizer_ids_plain": tokenizer(sentence, add_special_tokens=False)["input_ids"],
        "eos_token": tokenizer.eos_token,
    }


def main(folder: str, out_dir: str, ids_json: str, sentence: str) -> None:
    out = Path(out_dir)
    config = AutoConfig.from_pretrained(folder)
    report = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "qcompress_importable": importlib.util.find_spec("qcompress") is not None,
        "model_type": config.model_type,
        "rope_theta": getattr(config, "rope_theta", None),
        "rope_scaling": getattr(config, "rope_scaling", None),
        "tie_word_embeddings": config.tie_word_embeddings,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": getattr(config, "num_key_value_heads", None),
        "hidden_size": config.hidden_size,
        "generation_eos": GenerationConfig.from_pretrained(folder).eos_token_id,
        **read_tokenizer(folder, sentence),
    }
    if any(Path(folder).glob("*.safetensors")):
        report |= read_weights(folder, json.loads(ids_json), out)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: read_with_transformers4.py FOLDER OUT_DIR IDS_JSON SENTENCE")
    main(*sys.argv[1:])
