"""Load an exported model/ directory in a Python process where qcompress cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import torch

#: a fixed prompt whose logits the isolated process prints
PROMPT = [[1, 5, 9, 30, 2]]

SCRIPT = """
import sys
sys.path.append({purelib!r})
import importlib.util
assert importlib.util.find_spec("qcompress") is None, "qcompress must not be importable here"
import json, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained({model_dir!r}).eval()
if {adapter_dir!r}:
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, {adapter_dir!r}).eval()
with torch.no_grad():
    logits = model(input_ids=torch.tensor({prompt!r})).logits[0]
print(json.dumps(logits.tolist()))
assert "qcompress" not in sys.modules
"""


def logits_without_qcompress(model_dir: Path, adapter_dir: Path | None = None) -> torch.Tensor:
    """Logits of :data:`PROMPT` from plain transformers (+ peft for ``adapter_dir``) under ``python -I -S``.

    -I -S drops the editable-install hook and the repo from sys.path; only site-packages is added back."""
    script = SCRIPT.format(purelib=sysconfig.get_paths()["purelib"], model_dir=str(model_dir),
                           adapter_dir=str(adapter_dir) if adapter_dir else "", prompt=PROMPT)
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True,
                          cwd=model_dir.parent, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
