"""``onnx/``: a KV-cache decoder graph for ONNX Runtime, checked for parity before it is kept.

Steps: trace the float32 model (see :mod:`qcompress.export.onnx_graph`), apply ONNX Runtime's
offline transformer fusions where they help (see :mod:`qcompress.export.ort_optimize`), then
measure parity on the graph that will ship and refuse it if over ``atol``. The directory also
gets config.json, generation_config.json and the tokenizer files the runtime reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qcompress.export.exporter import ExportOptions
from qcompress.export.onnx_graph import export_decoder_graph
from qcompress.export.parity import measure_parity, require_parity


class OnnxExporter:
    name = "onnx"
    directory = "onnx"

    def export(self, model: Any, tokenizer: Any, out_dir: Path, options: ExportOptions) -> dict[str, Any]:
        path = out_dir / "model.onnx"
        export_decoder_graph(model, path, options.opset)
        figures = measure_parity(model, tokenizer, path, options.prompts)
        require_parity(figures, options.atol)
        model.config.save_pretrained(out_dir)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        return {
            "opset": options.opset,
            "dtype": "float32",
            "parity": {"max_abs_diff": figures, "atol": options.atol, "prompts": list(options.prompts)},
        }
