"""qcompress export on tiny GPT-2 and Llama: parity, a self-contained HF directory, determinism,
and every failure path leaving the filesystem as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from isolated import PROMPT, logits_without_qcompress
from qcompress.integrity import sha256_file


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_gpt2_dir, tiny_llama_dir) -> dict[str, tuple[Path, dict]]:
    """Each tiny model exported once through the public API: kind -> (artifact dir, manifest)."""
    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source

    artifacts = {}
    for kind, model_dir in (("gpt2", tiny_gpt2_dir), ("llama", tiny_llama_dir)):
        loaded = load_source(str(model_dir))
        out = tmp_path_factory.mktemp(f"artifact-{kind}") / "artifact"
        manifest = export_artifact(loaded.model, loaded.tokenizer, out, source=loaded.description)
        artifacts[kind] = (out, manifest)
    return artifacts


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_onnx_parity_with_and_without_cache(exported, kind):
    _, manifest = exported[kind]
    parity = manifest["formats"]["onnx"]["parity"]
    assert parity["atol"] == 1e-4
    assert 0 <= parity["max_abs_diff"]["no_cache"] <= 1e-4
    assert 0 <= parity["max_abs_diff"]["cache"] <= 1e-4


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_manifest_lists_every_file_with_its_hash(exported, kind):
    out, manifest = exported[kind]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert [entry["path"] for entry in manifest["files"]] == on_disk
    for entry in manifest["files"]:
        assert sha256_file(out / entry["path"]) == entry["sha256"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert {"onnx/model.onnx", "model/model.safetensors", "onnx/tokenizer.json"} <= set(on_disk)
    assert manifest["formats"]["onnx"]["opset"] == 18
    assert manifest["source"]["kind"] == "model"


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_model_dir_reloads_without_qcompress(exported, kind, tiny_gpt2_dir, tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM

    out, _ = exported[kind]
    reloaded = logits_without_qcompress(out / "model")
    source = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir if kind == "gpt2" else tiny_llama_dir).eval()
    with torch.no_grad():
        expected = source(input_ids=torch.tensor(PROMPT)).logits[0]
    # same weights bit for bit (checked at export); logits may differ in the last ulp with thread counts
    torch.testing.assert_close(reloaded, expected, atol=1e-6, rtol=0)


def test_export_twice_gives_identical_files(exported, tiny_llama_dir, tmp_path, run_cli):
    _, first = exported["llama"]
    result = run_cli("export", tiny_llama_dir, "--out", tmp_path / "again", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["files"] == len(first["files"])
    second = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert second["files"] == first["files"]


def test_float16_weights_reload(tiny_llama_dir, tmp_path, run_cli):
    import torch
    from transformers import AutoModelForCausalLM

    result = run_cli("export", tiny_llama_dir, "--out", tmp_path / "half", "--format", "safetensors", "--dtype", "float16")
    assert result.exit_code == 0, result.stderr
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "half" / "model")
    assert model.dtype == torch.float16
    assert not (tmp_path / "half" / "onnx").exists()


def test_untied_head_is_saved_when_it_diverged(tiny_llama_dir, tmp_path):
    """A merged lm_head that differs from the embedding must survive a save with tie_word_embeddings."""
    import torch
    from transformers import AutoModelForCausalLM

    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source

    loaded = load_source(str(tiny_llama_dir))
    head = loaded.model.get_output_embeddings()
    head.weight = torch.nn.Parameter(head.weight.detach().clone() + 0.01)
    export_artifact(loaded.model, loaded.tokenizer, tmp_path / "untied", source={}, formats=["safetensors"])
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "untied" / "model")
    assert torch.equal(reloaded.get_output_embeddings().weight, head.weight)
    assert not torch.equal(reloaded.get_output_embeddings().weight, reloaded.get_input_embeddings().weight)


def test_collapse_contract_refuses_formats_and_writes_extra_files(tiny_gpt2_dir, tmp_path):
    """What a method's collapse declares reaches the artifact: a refused format is skipped by default
    (and named in the manifest), refused with its reason when asked for; extra files land in their
    format's directory, are pinned by the manifest, and their info joins that format's entry."""
    from qcompress.errors import CapabilityError
    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source
    from qcompress.methods import Collapsed

    def extra(model_dir: Path) -> dict:
        (model_dir / "extra.txt").write_text("beside the weights", encoding="utf-8")
        return {"extra_file": "extra.txt"}

    loaded = load_source(str(tiny_gpt2_dir))
    collapsed = Collapsed(loaded.model, unsupported_formats={"onnx": "no graph for this one"},
                          extra_files={"safetensors": extra})
    with pytest.raises(CapabilityError, match="cannot export format 'onnx': no graph for this one"):
        export_artifact(collapsed, loaded.tokenizer, tmp_path / "refused", source={}, formats=["onnx"])
    assert not (tmp_path / "refused").exists()
    manifest = export_artifact(collapsed, loaded.tokenizer, tmp_path / "out", source={})
    assert list(manifest["formats"]) == ["safetensors"] and not (tmp_path / "out" / "onnx").exists()
    assert manifest["not_exported"] == {"onnx": "no graph for this one"}
    assert manifest["formats"]["safetensors"]["extra_file"] == "extra.txt"
    assert "model/extra.txt" in {entry["path"] for entry in manifest["files"]}


def test_unknown_source_is_input_error(tmp_path, run_cli):
    result = run_cli("export", tmp_path / "no-such-model", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "not found" in result.stderr
    assert not (tmp_path / "out").exists()


def test_corrupt_model_directory_is_input_error(tmp_path, run_cli):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ this is not json")
    result = run_cli("export", broken, "--out", tmp_path / "out")
    assert result.exit_code == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "config.json" in error_lines[0]
    assert not (tmp_path / "out").exists()


def test_existing_out_is_kept_without_force(exported, run_cli, tiny_gpt2_dir):
    out, manifest = exported["gpt2"]
    before = sha256_file(out / "manifest.json")
    result = run_cli("export", tiny_gpt2_dir, "--out", out)
    assert result.exit_code == 2
    assert "--force" in result.stderr
    assert sha256_file(out / "manifest.json") == before


def test_parity_failure_exits_3_and_writes_nothing(exported, tiny_gpt2_dir, tmp_path, run_cli):
    previous, _ = exported["gpt2"]
    out = tmp_path / "old"
    shutil.copytree(previous, out)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    result = run_cli("export", tiny_gpt2_dir, "--out", out, "--atol", "1e-12", "--force")
    assert result.exit_code == 3
    assert "parity" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--format", "safetensors,gguf-nope", "unknown exporter"), ("--dtype", "int4", "unknown dtype"), ("--atol", "-1", "atol"),
     ("--opset", "12", "opset")],
)
def test_bad_options_are_input_errors(tiny_gpt2_dir, tmp_path, run_cli, option, value, message):
    result = run_cli("export", tiny_gpt2_dir, "--out", tmp_path / "out", option, value)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()
