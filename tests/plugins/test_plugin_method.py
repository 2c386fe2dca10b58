"""A whole method as a plugin (plugins/qcompress-vera): found through the entry point, its own
hyper-parameters validated by its own config class, fitted, resumed, evaluated and exported
exactly like a built-in. Skipped, with the install command as the reason, when not installed."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from fit_helpers import tiny_cli_flags
from fs_helpers import error_line
from qcompress import registry

pytestmark = pytest.mark.skipif(
    "vera" not in {ep.name for ep in entry_points(group="qcompress.methods")},
    reason="plugin not installed: pip install -e plugins/qcompress-vera",
)


def test_the_method_comes_from_its_entry_point_with_its_config_class():
    (entry,) = [ep for ep in entry_points(group="qcompress.methods") if ep.name == "vera"]
    assert entry.value == "qcompress_vera:VeraMethod"
    method = registry.get("method", "vera")
    assert method.config_cls is not None and method.options({}).projection_rank == 256


def test_fit_export_and_eval_with_the_plugins_own_hyper_parameters(run_cli, tiny_llama_dir, corpus_dir, tmp_path):
    run, artifact = tmp_path / "run", tmp_path / "artifact"
    flags = [*tiny_cli_flags(tiny_llama_dir, corpus_dir), "--method", "vera", "--set", "projection_rank=16", "--set", "d_initial=0.5"]
    fitted = run_cli("fit", *flags, "--out", run, "--json")
    assert fitted.exit_code == 0, fitted.stderr
    summary = json.loads(fitted.stdout)
    header = json.loads((run / "qcompress.json").read_text())
    assert header["config"]["method_config"] == {"projection_rank": 16, "d_initial": 0.5}
    # per adapted layer VeRA trains d (projection rank) and b (output width): q_proj and v_proj of 2 layers
    assert summary["counts"]["trainable"] == 2 * ((16 + 32) + (16 + 16))
    assert summary["eval_perplexity"] < summary["initial_eval_perplexity"]
    exported = run_cli("export", run, "--out", artifact)
    assert exported.exit_code == 0, exported.stderr
    parity = json.loads((artifact / "manifest.json").read_text())["formats"]["onnx"]["parity"]["max_abs_diff"]
    assert max(parity.values()) < 1e-4
    text = ["--data", corpus_dir / "train", "--eval-data", corpus_dir / "heldout.txt", "--json"]
    from_run, from_artifact = run_cli("eval", run, *text), run_cli("eval", artifact, *text)
    assert from_run.exit_code == from_artifact.exit_code == 0
    assert json.loads(from_artifact.stdout)["perplexity"] == pytest.approx(json.loads(from_run.stdout)["perplexity"], rel=1e-4)


@pytest.mark.parametrize("flags, message", [
    (["--method", "vera", "--set", "projection_rank=0"], "invalid method_config of 'vera': projection_rank"),
    (["--method", "vera", "--set", "nope=1"], "invalid method_config of 'vera': nope: Extra inputs are not permitted"),
    (["--method", "lora", "--set", "projection_rank=8"], "method 'lora' takes no options of its own"),
    (["--method", "vera", "--set", "projection_rank"], "--set 'projection_rank' must be KEY=VALUE"),
])
def test_bad_method_options_are_one_line_before_anything_is_written(run_cli, tiny_llama_dir, corpus_dir, tmp_path, flags, message):
    result = run_cli("fit", *tiny_cli_flags(tiny_llama_dir, corpus_dir), *flags, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert message in error_line(result.stderr)
    assert not (tmp_path / "run").exists()


def test_inspect_takes_the_plugins_options_like_fit(run_cli, tiny_llama_dir):
    result = run_cli("inspect", "--method", "vera", "--model", tiny_llama_dir, "--set", "projection_rank=8", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["trainable"] == 2 * ((8 + 32) + (8 + 16))
