"""Load a written PEFT adapter the way a user without qcompress would, and return its logits.

The check is only worth something if qcompress cannot help: the child Python runs with ``-I -S``
(no PYTHONPATH, no current directory, no ``.pth`` files, so the editable install's import hook is
never installed), gets back only the interpreter's site-packages (for torch, transformers, peft)
and, first of all, a meta-path finder that makes ``import qcompress`` fail even where qcompress is
installed there as a regular package. It reports which qcompress modules it ended up with (none,
or the check fails) and writes its logits as safetensors (no pickle) for the parent to compare.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import torch
from safetensors.torch import load_file

from qcompress.errors import CheckFailed

#: seconds the reload may take (import torch + transformers + peft, load, a few forward passes)
RELOAD_TIMEOUT = 600

CHILD = r"""
import sys
args = __import__("json").loads(sys.argv[1])
sys.path.extend(args["site"])


class NoQcompress:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] == "qcompress":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoQcompress)
import json
import peft
import torch
import transformers
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

torch.set_num_threads(args["threads"])
base = AutoModelForCausalLM.from_pretrained(args["base"], dtype=torch.float32)
model = PeftModel.from_pretrained(base, args["adapter"]).eval()
with torch.no_grad():
    logits = {str(i): model(input_ids=torch.tensor([ids])).logits[0].contiguous() for i, ids in enumerate(args["prompts"])}
save_file(logits, args["logits"])
try:
    import qcompress
    importable = True
except ModuleNotFoundError:
    importable = False
loaded = sorted(name for name in sys.modules if name.partition(".")[0] == "qcompress")
print(json.dumps({"qcompress_importable": importable, "qcompress_modules": loaded,
                  "transformers": transformers.__version__, "peft": peft.__version__}))
"""


def site_directories() -> list[str]:
    """The interpreter's own package directories (where torch, transformers and peft are)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def isolated_python(code: str, argument: str, cwd: Path, timeout: float = RELOAD_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``code`` in ``python -I -S`` with one argument, offline, from ``cwd`` (never the repository)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, argument], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout, check=False)


def reload_logits(base_dir: Path, adapter_dir: Path, prompts: list[list[int]], work_dir: Path) -> tuple[list[torch.Tensor], dict]:
    """Logits of each prompt from ``PeftModel.from_pretrained(base_dir, adapter_dir)`` in a process without
    qcompress, and what that process reports (library versions, ``qcompress_importable``)."""
    logits_path = work_dir.resolve() / "reload-logits.safetensors"  # absolute: the child runs in work_dir
    argument = json.dumps({"site": site_directories(), "base": str(base_dir.resolve()), "adapter": str(adapter_dir.resolve()),
                           "prompts": prompts, "logits": str(logits_path), "threads": torch.get_num_threads()})
    try:
        done = isolated_python(CHILD, argument, work_dir)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"reloading the PEFT adapter with plain transformers + peft took over {RELOAD_TIMEOUT} s; "
                          "nothing was written (retry on a less loaded machine)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CheckFailed(f"plain transformers + peft could not load the written PEFT adapter ({last}); "
                          "nothing was written; report this as a bug")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["qcompress_importable"] or report["qcompress_modules"]:
        raise CheckFailed("the PEFT reload check could not hide qcompress from its process; nothing was written; report this as a bug")
    logits = load_file(logits_path)
    return [logits[str(i)] for i in range(len(prompts))], report
