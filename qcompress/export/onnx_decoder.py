"""``onnx/``: a KV-cache decoder graph for ONNX Runtime, checked for parity before it is kept.

Steps: trace the float32 model (see :mod:`qcompress.export.onnx_graph`), apply ONNX Runtime's
offline transformer fusions (see :mod:`qcompress.export.ort_optimize`), then measure parity on the
graph that will ship. If the fused graph misses ``atol`` but the raw one meets it, the raw graph
ships (speed never outranks correctness); if both miss, the export fails. The directory also gets
config.json, generation_config.json and the tokenizer files the runtime reads, made readable by
transformers 4.57 too (Optimum's ORTModelForCausalLM reads them with transformers < 4.58).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import onnx

from qcompress.errors import InputError
from qcompress.export.exporter import ExportOptions
from qcompress.export.onnx_graph import copy_graph, export_decoder_graph
from qcompress.export.ort_optimize import fuse_transformer_ops
from qcompress.export.parity import measure_parity, parity_holds, require_parity
from qcompress.export.transformers4 import make_transformers4_readable
from qcompress.models import text_config


class OnnxExporter:
    name = "onnx"
    directory = "onnx"

    def export(self, model: Any, tokenizer: Any, out_dir: Path, options: ExportOptions) -> dict[str, Any]:
        if not getattr(tokenizer, "is_fast", False):
            raise InputError("the ONNX runtime tokenizes with tokenizer.json, but this tokenizer has no fast version; "
                             "convert it with transformers (AutoTokenizer(..., use_fast=True)) and save it next to the model")
        path = out_dir / "model.onnx"
        raw = out_dir.parent / f".{self.name}-raw" / "model.onnx"
        raw.parent.mkdir()
        try:
            export_decoder_graph(model, raw, options.opset)
            onnx.checker.check_model(str(raw))
            copy_graph(raw, path)
            fusions = fuse_transformer_ops(path, text_config(model))
            figures = measure_parity(model, tokenizer, path, options.prompts)
            if fusions["fused"] and not parity_holds(figures, options.atol):
                raw_figures = measure_parity(model, tokenizer, raw, options.prompts)
                if parity_holds(raw_figures, options.atol):
                    copy_graph(raw, path)
                    fusions, figures = {"profile": None, "fused": {}, "dropped": "fusions broke parity"}, raw_figures
            require_parity(figures, options.atol)
        finally:
            shutil.rmtree(raw.parent, ignore_errors=True)
        model.config.save_pretrained(out_dir)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        make_transformers4_readable(out_dir)
        return {
            "opset": options.opset,
            "dtype": "float32",
            "ort_fusions": fusions,
            "parity": {"max_abs_diff": figures, "atol": options.atol, "prompts": list(options.prompts)},
        }
