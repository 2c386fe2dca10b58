"""``qcompress export RUN --format peft``: a LoRA-family run as a standard PEFT adapter.

On tiny GPT-2 (Conv1D, fan_in_fan_out) and tiny Llama: what is written is PEFT's own format and
loads with ``PeftModel.from_pretrained`` into the run's logits; the export's own reload check runs
where qcompress cannot be imported; two runs' adapters on one base serve side by side from one
PeftModel; what is not a LoRA (ffa, qtha, PEFT's other tuners, a plain model) is refused with exit 4
and nothing written; a reload beyond --atol is exit 3 with nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fit_helpers import tiny_config
from fs_helpers import error_line, leftovers
from qcompress.export.artifact import export_artifact
from qcompress.export.peft_reload import isolated_python, site_directories
from qcompress.export.source import load_source
from qcompress.methods import get_method
from qcompress.models import load_model
from qcompress.training.fit import fit

#: (model, method) of every exported run; the two GPT-2 runs share a base for the side-by-side test
RUNS = [("gpt2", "lora"), ("gpt2", "qpa-lora"), ("llama", "dora"), ("llama", "qpa-dora")]
#: a large rate and a non-zero generator start, so two steps move the model visibly off its base
FAST = {"steps": 2, "eval_every": 0, "checkpoint_every": 2, "lr": 1e-2, "adapter.zero_init": False}
IDS = torch.tensor([[1, 5, 9, 30, 2, 7, 11]])


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=IDS).logits


def _base(model_dir: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def model_dirs(tiny_gpt2_dir, tiny_llama_dir) -> dict[str, Path]:
    return {"gpt2": tiny_gpt2_dir, "llama": tiny_llama_dir}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model_dirs, corpus_dir) -> dict[tuple[str, str], tuple[Path, dict, torch.Tensor]]:
    """Each run fitted for two steps and exported as peft: (kind, method) -> (artifact, manifest, run logits)."""
    out = {}
    for kind, method in RUNS:
        root = tmp_path_factory.mktemp(f"{kind}-{method}")
        fit(tiny_config(model_dirs[kind], corpus_dir, method=method, **FAST), root / "run")
        loaded = load_source(str(root / "run"))
        run_logits = _logits(loaded.model.model)
        manifest = export_artifact(loaded.model, loaded.tokenizer, root / "artifact", source=loaded.description, formats=["peft"])
        out[kind, method] = (root / "artifact", manifest, run_logits)
    return out


@pytest.mark.parametrize(("kind", "method"), RUNS)
def test_plain_peft_loads_the_adapter_into_the_run(exported, model_dirs, kind, method):
    from peft import PeftModel

    artifact, manifest, run_logits = exported[kind, method]
    assert sorted(p.relative_to(artifact).as_posix() for p in artifact.rglob("*")) == [
        "manifest.json", "peft", "peft/README.md", "peft/adapter_config.json", "peft/adapter_model.safetensors"]
    config = json.loads((artifact / "peft" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["use_dora"] == method.endswith("dora")
    assert config["fan_in_fan_out"] == (kind == "gpt2")
    assert config["target_modules"] == sorted(config["target_modules"])  # not a set's hash order: reproducible bytes
    assert config["base_model_name_or_path"] == str(model_dirs[kind])
    reloaded = _logits(PeftModel.from_pretrained(_base(model_dirs[kind]), artifact / "peft"))
    torch.testing.assert_close(reloaded, run_logits, atol=1e-5, rtol=0)
    assert (run_logits - _logits(_base(model_dirs[kind]))).abs().max() > 1e-3  # the adapter carries the training
    entry = manifest["formats"]["peft"]
    assert entry["parity"]["max_abs_diff"] <= entry["parity"]["atol"] == 1e-4
    assert entry["parity"]["qcompress_importable"] is False
    assert {entry["use_dora"], entry["r"], entry["base_model_name_or_path"]} == {
        method.endswith("dora"), 4, str(model_dirs[kind])}


def test_reload_process_cannot_see_the_editable_qcompress(tmp_path):
    """Without the child's import blocker, -I -S and site-packages alone already hide the editable install."""
    code = "import sys, json, importlib.util; sys.path.extend(json.loads(sys.argv[1])); print(importlib.util.find_spec('qcompress'))"
    done = isolated_python(code, json.dumps(site_directories()), tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_two_runs_adapters_serve_side_by_side(exported, model_dirs):
    from peft import PeftModel

    (lora, _, lora_logits), (qpa, _, qpa_logits) = exported["gpt2", "lora"], exported["gpt2", "qpa-lora"]
    served = PeftModel.from_pretrained(_base(model_dirs["gpt2"]), lora / "peft", adapter_name="lora")
    served.load_adapter(qpa / "peft", adapter_name="qpa")
    for name, expected in (("lora", lora_logits), ("qpa", qpa_logits), ("lora", lora_logits)):
        served.set_adapter(name)
        torch.testing.assert_close(_logits(served), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["lora", "dora", "qpa-lora", "qpa-dora", "ia3", "fourierft"])
def test_only_lora_family_collapses_keep_a_peft_adapter(tiny_llama_dir, corpus_dir, method):
    options = {"fourierft": {"n_frequency": 64}}.get(method, {})
    config = tiny_config(tiny_llama_dir, corpus_dir, method=method, method_config=options)
    collapsed = get_method(method).attach(load_model(str(tiny_llama_dir)).model, config).collapse()
    assert (collapsed.peft_adapter is not None) == (method in {"lora", "dora", "qpa-lora", "qpa-dora"})


@pytest.mark.parametrize("method", ["ffa", "qtha"])
def test_a_method_that_is_no_lora_is_refused(tmp_path, corpus_dir, tiny_llama_dir, run_cli, method):
    fit(tiny_config(tiny_llama_dir, corpus_dir, method=method, steps=1, eval_every=0, checkpoint_every=1), tmp_path / "run")
    result = run_cli("export", tmp_path / "run", "--format", "peft", "--out", tmp_path / "out")
    assert result.exit_code == 4
    assert f"method {method!r} is not a LoRA/DoRA update" in error_line(result.stderr)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_a_model_spec_is_refused(tmp_path, tiny_gpt2_dir, run_cli):
    result = run_cli("export", tiny_gpt2_dir, "--format", "peft", "--out", tmp_path / "out")
    assert result.exit_code == 4
    assert "a model spec has no adapter" in error_line(result.stderr)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_reload_beyond_atol_exits_3_and_writes_nothing(exported, tmp_path, run_cli):
    run = exported["gpt2", "lora"][0].parent / "run"
    result = run_cli("export", run, "--format", "peft", "--atol", "1e-12", "--out", tmp_path / "out")
    assert result.exit_code == 3
    assert "PEFT adapter parity failed" in error_line(result.stderr)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
