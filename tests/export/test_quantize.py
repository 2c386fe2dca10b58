"""``qcompress export --quantize int8|int4|int8-dynamic`` on tiny GPT-2 (Conv1D -> Gemm) and tiny Llama (tied head).

What is checked: the quantized decoder is smaller than the float32 one and holds ONNX Runtime's
quantized ops for every Linear/Conv1D/Embedding weight (the tiny dims are above nothing ORT skips:
every chosen node is quantized); the manifest carries the perplexity gate; ``generate`` and ``eval``
run the artifact unchanged; QTHA's own ops stay float32; a gate beyond the tolerance is exit 3 with
nothing written; bad values are one line, exit 2, before anything loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from fit_helpers import tiny_config
from fs_helpers import error_line, leftovers
from qcompress.export.artifact import export_artifact
from qcompress.export.quantize import resolve_quantize
from qcompress.export.source import load_source

CASES = [("gpt2", "int8", None), ("gpt2", "int4", 16), ("llama", "int8", 64), ("llama", "int4", None),
         ("llama", "int8-dynamic", None)]
EXPECTED_OPS = {"int8": {"MatMulNBits", "DequantizeLinear"}, "int4": {"MatMulNBits", "GatherBlockQuantized"},
                "int8-dynamic": {"MatMulInteger", "DynamicQuantizeLinear"}}
TOLERANCE = {"int8": 0.02, "int4": 0.05, "int8-dynamic": 0.02}
#: what each tiny model quantizes: every projection, the output head, and the embedding tables (GPT-2 has two)
QUANTIZED_NODES = {"gpt2": 2 * 4 + 1 + 2, "llama": 2 * 7 + 1 + 1}


def corpus_flags(corpus_dir: Path) -> tuple[str, ...]:
    return ("--data", str(corpus_dir / "train"), "--eval-data", str(corpus_dir / "heldout.txt"))


def _export(model_dir: Path, out: Path, corpus_dir: Path, scheme: str, block_size: int | None = None, source=None) -> dict:
    loaded = load_source(str(model_dir)) if source is None else source
    options = resolve_quantize(scheme, block_size, None, 512, str(corpus_dir / "train"), str(corpus_dir / "heldout.txt"))
    return export_artifact(loaded.model, loaded.tokenizer, out, source=loaded.description, formats=["onnx"], quantize=options)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_gpt2_dir, tiny_llama_dir, corpus_dir) -> dict[tuple[str, str], tuple[Path, dict]]:
    """(kind, scheme) -> (artifact, manifest), each exported once through the public API."""
    dirs = {"gpt2": tiny_gpt2_dir, "llama": tiny_llama_dir}
    out = {}
    for kind, scheme, block_size in CASES:
        artifact = tmp_path_factory.mktemp(f"{kind}-{scheme}") / "artifact"
        out[kind, scheme] = artifact, _export(dirs[kind], artifact, corpus_dir, scheme, block_size)
    return out


@pytest.mark.parametrize(("kind", "scheme", "block_size"), CASES)
def test_quantized_decoder_is_smaller_and_holds_quantized_ops(quantized, onnx_artifacts, kind, scheme, block_size):
    artifact, manifest = quantized[kind, scheme]
    graph = artifact / "onnx" / "model.onnx"
    float_graph = onnx_artifacts[kind] / "onnx" / "model.onnx"
    assert graph.stat().st_size < 0.8 * float_graph.stat().st_size
    info = manifest["formats"]["onnx"]["quantization"]
    assert info["float32_graph_bytes"] == float_graph.stat().st_size and info["graph_bytes"] == graph.stat().st_size
    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    assert EXPECTED_OPS[scheme] <= ops
    assert info["quantized_nodes"] == QUANTIZED_NODES[kind] and info["float32_weight_nodes"] == 0
    assert "Gemm" not in ops  # GPT-2's Conv1D Gemms were rewritten to MatMul and quantized
    assert info["scheme"] == scheme and info.get("block_size") == (None if scheme == "int8-dynamic" else block_size or 32)
    assert [entry for entry in manifest["files"] if entry["path"] == "onnx/model.onnx"][0]["size"] == graph.stat().st_size


@pytest.mark.parametrize(("kind", "scheme", "block_size"), CASES)
def test_manifest_carries_the_perplexity_gate(quantized, kind, scheme, block_size):
    gate = quantized[kind, scheme][1]["formats"]["onnx"]["quantization"]["perplexity_gate"]
    assert gate["metric"] == "perplexity" and gate["tolerance"] == TOLERANCE[scheme]
    assert gate["relative_change"] == pytest.approx(gate["quantized_onnx"] / gate["float32_pytorch"] - 1)
    assert gate["relative_change"] <= gate["tolerance"]
    assert "heldout.txt" in gate["data"] and gate["tokens"] == 511 and gate["seq_len"] == 128


@pytest.mark.parametrize("scheme", ["int8", "int4", "int8-dynamic"])
def test_generate_and_eval_run_the_quantized_artifact(quantized, run_cli, corpus_dir, scheme):
    artifact, manifest = quantized["llama", scheme]
    generated = run_cli("generate", artifact, "--prompt", "The sister", "--max-new-tokens", "4", "--threads", "1")
    assert generated.exit_code == 0, generated.stderr
    evaluated = run_cli("eval", artifact, *corpus_flags(corpus_dir), "--max-tokens", "512", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    gate = manifest["formats"]["onnx"]["quantization"]["perplexity_gate"]
    assert json.loads(evaluated.stdout)["perplexity"] == pytest.approx(gate["quantized_onnx"], rel=1e-6)


def test_a_qtha_run_keeps_its_circuit_float32_and_gates_on_its_own_corpus(tmp_path, tiny_llama_dir, corpus_dir, run_cli):
    from qcompress.training.fit import fit

    config = tiny_config(tiny_llama_dir, corpus_dir, method="qtha", steps=1, eval_every=0, checkpoint_every=1, **{"method_config.inner": 16})
    fit(config, tmp_path / "run")
    result = run_cli("export", tmp_path / "run", "--out", tmp_path / "artifact", "--quantize", "int4", "--quantize-eval-tokens", "512")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    info = manifest["formats"]["onnx"]["quantization"]
    assert manifest["method"] == "qtha" and list(manifest["formats"]) == ["onnx"] and info["ops"]["MatMulNBits"] > 0
    # q_proj/v_proj are QTHA layers (circuit, encode map and stacked readout): float32; every other weight is int4
    assert info["float32_weight_nodes"] > 0 and info["quantized_nodes"] == QUANTIZED_NODES["llama"] - 2 * 2
    assert "heldout.txt" in info["perplexity_gate"]["data"]  # no --data: the run's own corpus, as qcompress eval takes it
    assert "perplexity gate:" in result.stderr


def _sharp_llama(tiny_llama_dir: Path, out: Path) -> Path:
    """The tiny Llama re-initialised with 25x larger weights: its logits are sharp enough that quantization
    noise costs perplexity (at the default scale every scheme happens to cost nothing)."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_llama_dir)
    config.initializer_range = 0.5
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_llama_dir / name).is_file():
            shutil.copy(tiny_llama_dir / name, out / name)
    return out


def test_gate_beyond_tolerance_exits_3_and_writes_nothing(tiny_llama_dir, corpus_dir, tmp_path, run_cli):
    model = _sharp_llama(tiny_llama_dir, tmp_path / "sharp")
    flags = ("--quantize", "int8-dynamic", *corpus_flags(corpus_dir), "--quantize-eval-tokens", "512")
    measured = run_cli("export", model, "--out", tmp_path / "measured", *flags, "--quantize-tolerance", "10")
    assert measured.exit_code == 0, measured.stderr
    manifest = json.loads((tmp_path / "measured" / "manifest.json").read_text())
    change = manifest["formats"]["onnx"]["quantization"]["perplexity_gate"]["relative_change"]
    assert change > 0
    result = run_cli("export", model, "--out", tmp_path / "out", *flags, "--quantize-tolerance", str(change / 2))
    assert result.exit_code == 3
    assert "int8-dynamic perplexity gate failed" in error_line(result.stderr)
    assert "try int8, which leaves activations in float" in error_line(result.stderr)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--quantize", "int3"), "--quantize int3: choose one of int8, int4, int8-dynamic"),
        (("--quantize", "int4", "--block-size", "7"), "--block-size 7: give a power of two >= 16"),
        (("--quantize", "int4", "--block-size", "8"), "--block-size 8: give a power of two >= 16"),
        (("--quantize", "int8-dynamic", "--block-size", "32"), "--block-size applies to the weight-only schemes int8 and int4"),
        (("--quantize", "int8", "--quantize-tolerance", "-0.1"), "--quantize-tolerance -0.1"),
        (("--block-size", "32",), "--block-size applies to a quantized export"),
        (("--quantize", "int8", "--format", "safetensors"), "has no onnx: add onnx to --format"),
    ],
)
def test_bad_quantize_values_are_one_line_exit_2(tiny_gpt2_dir, tmp_path, run_cli, flags, message):
    result = run_cli("export", tiny_gpt2_dir, "--out", tmp_path / "out", *flags)
    assert result.exit_code == 2
    assert message in error_line(result.stderr)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
