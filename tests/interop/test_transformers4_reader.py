"""A real transformers 4.57 reads the exported folders and gets the same logits as the installed 5.x.

The reader runs in its own environment, ``.venv-tf457`` (``tools/interop/make_reader_env.sh``: torch 2.13.0
CPU, transformers 4.57.6, no qcompress), through ``tools/interop/read_with_transformers4.py`` in a
subprocess. Skipped with the reason when that environment is absent; slow (a few torch imports).
The fast, field-by-field form of these checks is test_transformers4_fields.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
READER_PYTHON = ROOT / ".venv-tf457" / "bin" / "python"
READER = ROOT / "tools" / "interop" / "read_with_transformers4.py"
ATOL = 1e-5
IDS = [[(7 * i + 3) % 300 for i in range(24)], [(11 * i + 5) % 300 for i in range(24)]]
SENTENCE = "It is a truth universally acknowledged, that the weather was fine and the morning walk"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not READER_PYTHON.is_file(), reason="no transformers 4.57 reader env: "
                       "run tools/interop/make_reader_env.sh (creates .venv-tf457)"),
]


def read_457(folder: Path, out: Path) -> tuple[dict, np.ndarray | None]:
    """Run the 4.57 reader on ``folder``; its report and, for a folder with weights, its logits."""
    out.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    done = subprocess.run([str(READER_PYTHON), str(READER), str(folder), str(out), json.dumps(IDS), SENTENCE],
                          cwd=out, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"the transformers 4.57 reader failed on {folder}: {done.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    assert report["transformers"].startswith("4.57."), f".venv-tf457 has transformers {report['transformers']}"
    assert not report["qcompress_importable"], "qcompress must not be importable in the reader env"
    logits = out / "logits.npy"
    return report, (np.load(logits) if logits.exists() else None)


def installed_logits(model_dir: Path) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor(IDS)).logits.numpy()


def check_tokenizer(report: dict, folder: Path) -> None:
    assert "tokenizer_error" not in report, report.get("tokenizer_error")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert report["tokenizer_ids"] == tokenizer(SENTENCE)["input_ids"]
    assert report["tokenizer_ids_plain"] == tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    assert report["eos_token"] == tokenizer.eos_token


def test_reader_env_is_what_the_script_installs():
    probe = "import sys, torch, transformers; print(sys.prefix, transformers.__version__, torch.__version__)"
    prefix, transformers4, torch_version = subprocess.run([str(READER_PYTHON), "-c", probe], capture_output=True,
                                                          text=True, timeout=300, check=True).stdout.split()
    assert Path(prefix) == READER_PYTHON.parents[1] and Path(prefix) != Path(sys.prefix)
    assert transformers4.startswith("4.57.") and torch_version.startswith("2.13.0")


@pytest.mark.parametrize("kind", ["gpt2", "llama", "rope-llama"])
def test_457_loads_model_dir_with_the_same_logits(merged_artifacts, tmp_path, kind):
    model_dir = merged_artifacts[kind] / "model"
    report, logits = read_457(model_dir, tmp_path / "read")
    config = AutoConfig.from_pretrained(model_dir)
    assert report["missing_keys"] == report["unexpected_keys"] == report["mismatched_keys"] == []
    assert report["dtype"] == "torch.float32"
    assert report["tie_word_embeddings"] is config.tie_word_embeddings is report["head_shares_embedding"]
    if kind != "gpt2":
        rope = dict(config.rope_parameters)
        assert report["rope_theta"] == rope.pop("rope_theta")
        assert report["rope_scaling"] == (None if rope == {"rope_type": "default"} else rope)
    check_tokenizer(report, model_dir)
    np.testing.assert_allclose(logits, installed_logits(model_dir), rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_457_reads_the_onnx_folder_as_optimum_would(onnx_artifacts, tmp_path, kind):
    """Optimum pins transformers < 4.58 and reads onnx/config.json and the tokenizer beside the graph."""
    onnx_dir = onnx_artifacts[kind] / "onnx"
    report, logits = read_457(onnx_dir, tmp_path / "read")
    config = AutoConfig.from_pretrained(onnx_dir)
    assert logits is None
    assert (report["model_type"], report["hidden_size"], report["num_attention_heads"]) == (
        config.model_type, config.hidden_size, config.num_attention_heads)
    assert report["num_key_value_heads"] == getattr(config, "num_key_value_heads", None)
    assert report["generation_eos"] == config.eos_token_id
    check_tokenizer(report, onnx_dir)


def test_without_the_4x_rope_fields_457_runs_another_model(merged_artifacts, tmp_path):
    """The control: 5.x's config.json alone (no rope_theta / rope_scaling) is silently misread by 4.57."""
    stripped = Path(shutil.copytree(merged_artifacts["rope-llama"] / "model", tmp_path / "model"))
    config = json.loads((stripped / "config.json").read_text())
    del config["rope_theta"], config["rope_scaling"]
    (stripped / "config.json").write_text(json.dumps(config))
    report, logits = read_457(stripped, tmp_path / "read")
    assert report["rope_theta"] == 10000.0 and report["rope_scaling"] is None
    assert np.abs(logits - installed_logits(stripped)).max() > 100 * ATOL
