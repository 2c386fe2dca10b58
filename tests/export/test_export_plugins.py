"""Exporters are looked up in the registry, and a fused graph that breaks parity never ships."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from qcompress import registry


class ParameterListExporter:
    """A plugin-style format: one text file naming every parameter."""

    name = "param-list"
    directory = "params"

    def export(self, model, tokenizer, out_dir: Path, options) -> dict:
        names = [name for name, _ in model.named_parameters()]
        (out_dir / "parameters.txt").write_text("\n".join(names) + "\n")
        return {"count": len(names)}


def test_registered_exporter_is_used_by_name(tiny_gpt2_dir, tmp_path):
    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source

    registry.register("exporter", "param-list", ParameterListExporter)
    try:
        loaded = load_source(str(tiny_gpt2_dir))
        manifest = export_artifact(loaded.model, loaded.tokenizer, tmp_path / "out", source={}, formats=["param-list"])
    finally:
        registry.unregister("exporter", "param-list")
    assert manifest["formats"] == {"param-list": {"count": len(list(loaded.model.parameters()))}}
    assert [entry["path"] for entry in manifest["files"]] == ["params/parameters.txt"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["formats"]["param-list"]["count"] > 0


def _shift_logits(path: Path, config) -> dict:
    """A 'fusion' that corrupts the graph: logits + 1 (a real graph edit, as a buggy fusion would make)."""
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        node.output[:] = ["logits_unshifted" if name == "logits" else name for name in node.output]
    proto.graph.initializer.append(numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"))
    proto.graph.node.append(helper.make_node("Add", ["logits_unshifted", "one"], ["logits"]))
    onnx.save(proto, str(path))
    return {"profile": "broken", "fused": {"Add": 1}}


def test_fusions_that_break_parity_are_dropped(tiny_llama_dir, tmp_path, monkeypatch):
    from qcompress.export import onnx_decoder
    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source

    monkeypatch.setattr(onnx_decoder, "fuse_transformer_ops", _shift_logits)
    loaded = load_source(str(tiny_llama_dir))
    manifest = export_artifact(loaded.model, loaded.tokenizer, tmp_path / "out", source={}, formats=["onnx"])
    info = manifest["formats"]["onnx"]
    assert info["ort_fusions"]["dropped"] == "fusions broke parity"
    assert max(info["parity"]["max_abs_diff"].values()) <= 1e-4
