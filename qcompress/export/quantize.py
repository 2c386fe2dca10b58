"""``qcompress export --quantize int8|int4``: the ONNX decoder's weights quantized by ONNX Runtime's own tools.

Runs after the float32 decoder has passed its logit parity check, on the staged graph, and replaces
it: the artifact ships the quantized decoder only (the float32 one is what an export without
``--quantize`` gives, byte for byte, so keeping it would double ``onnx/`` for nothing the runtime
reads). ``model/`` (safetensors) is not touched.

- ``int8``: ``quantize_dynamic``, int8 weights per output channel, activations quantized per call
  (``DynamicQuantizeLinear`` + ``MatMulInteger``, which ONNX Runtime fuses at load); embedding
  tables as int8 ``Gather`` + ``DequantizeLinear``.
- ``int4``: ``MatMulNBitsQuantizer``, weight-only, symmetric, one scale per ``block_size`` weights
  along the input axis (``MatMulNBits``); embedding tables as ``GatherBlockQuantized``, whose int4
  tensors need opset 21, to which ONNX Runtime's quantizer raises the graph (recorded).

Which matrices are quantized, and how the graph is prepared for the quantizers, is
:mod:`qcompress.export.quantize_graph`. Logits cannot match float32 any more, so the check is
held-out perplexity (:mod:`qcompress.export.quantize_gate`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from qcompress.errors import CapabilityError, InputError
from qcompress.export.onnx_graph import graph_files, save_onnx
from qcompress.export.quantize_gate import GateData, check_perplexity
from qcompress.export.quantize_graph import default_opset, float_weight_ops, normalize_weights, op_counts, weight_nodes
from qcompress.runtime.artifact import GRAPH

SCHEMES = ("int8", "int4")
DEFAULT_TOLERANCE = {"int8": 0.02, "int4": 0.05}  # relative perplexity increase over float32 PyTorch
DEFAULT_BLOCK_SIZE = 32
MIN_BLOCK_SIZE = 16  # ONNX Runtime's MatMulNBits / GatherBlockQuantized: a power of two >= 16
DEFAULT_EVAL_TOKENS = 2048
REPORTED_OPS = ("MatMulNBits", "GatherBlockQuantized", "MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class QuantizeOptions:
    """A resolved ``--quantize`` request; ``data``/``eval_data`` ``None``: the run's corpus, else ``austen``."""

    scheme: str
    block_size: int
    tolerance: float
    eval_tokens: int
    data: str | None = None
    eval_data: str | None = None


def resolve_quantize(
    scheme: str | None, block_size: int | None = None, tolerance: float | None = None, eval_tokens: int | None = None,
    data: str | None = None, eval_data: str | None = None,
) -> QuantizeOptions | None:
    """Check the ``--quantize`` flags before anything loads; ``None`` when no quantization was asked for."""
    if scheme is None:
        flags = {"--block-size": block_size, "--quantize-tolerance": tolerance, "--quantize-eval-tokens": eval_tokens,
                 "--data": data, "--eval-data": eval_data}
        given = [flag for flag, value in flags.items() if value is not None]
        if given:
            raise InputError(f"{given[0]} applies to a quantized export: add --quantize int8 or int4, or drop {given[0]}")
        return None
    if scheme not in SCHEMES:
        raise InputError(f"--quantize {scheme}: choose one of {', '.join(SCHEMES)}")
    if block_size is not None and scheme != "int4":
        raise InputError("--block-size applies to --quantize int4 only (int8 quantizes per channel): drop it or use int4")
    block = DEFAULT_BLOCK_SIZE if block_size is None else block_size
    if block < MIN_BLOCK_SIZE or block & (block - 1):
        raise InputError(f"--block-size {block}: give a power of two >= {MIN_BLOCK_SIZE} (e.g. 32, 64, 128)")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise InputError(f"--quantize-tolerance {tolerance}: give a relative perplexity increase >= 0 (e.g. 0.05 for +5%)")
    if eval_tokens is not None and eval_tokens < 2:
        raise InputError(f"--quantize-eval-tokens {eval_tokens}: give at least 2 tokens")
    return QuantizeOptions(
        scheme, block, DEFAULT_TOLERANCE[scheme] if tolerance is None else tolerance,
        DEFAULT_EVAL_TOKENS if eval_tokens is None else eval_tokens, data, eval_data,
    )


@contextlib.contextmanager
def quiet_quantizers() -> Iterator[None]:
    """ONNX Runtime's quantizers log every node at INFO and advise pre-processing at WARNING, on
    handlers of their own, and may print: a user of ``qcompress export`` can act on none of it, and
    stdout belongs to ``--json``."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        logging.disable(previous)


def _int8(proto: onnx.ModelProto, chosen: list[str], others: list[str], options: QuantizeOptions, work: Path) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = work / GRAPH
    quantize_dynamic(proto, out, nodes_to_quantize=chosen, per_channel=True,
                     weight_type=QuantType.QInt8, use_external_data_format=True)
    return onnx.load(str(out))


def _int4(proto: onnx.ModelProto, chosen: list[str], others: list[str], options: QuantizeOptions, work: Path) -> onnx.ModelProto:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    # its node list widens rather than narrows, so what is not chosen is excluded explicitly
    quantizer = MatMulNBitsQuantizer(proto, bits=4, block_size=options.block_size, is_symmetric=True,
                                     nodes_to_exclude=others, op_types_to_quantize=("MatMul", "Gather"))
    quantizer.process()
    return quantizer.model.model


QUANTIZERS: dict[str, Callable[..., onnx.ModelProto]] = {"int8": _int8, "int4": _int4}
TOOLS = {
    "int8": "onnxruntime.quantization.quantize_dynamic",
    "int4": "onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer",
}


def _settings(options: QuantizeOptions) -> dict[str, Any]:
    if options.scheme == "int8":
        return {"weights": "int8, symmetric, per output channel", "activations": "uint8, dynamic per tensor"}
    return {"weights": "int4, symmetric, per block", "block_size": options.block_size, "activations": "float32"}


def quantize_onnx(model: Any, onnx_dir: Path, options: QuantizeOptions, gate: GateData) -> dict[str, Any]:
    """Quantize ``onnx_dir/model.onnx`` in place, then gate it on perplexity; returns the manifest entry.

    Raises :class:`CapabilityError` when the graph has no weight the quantizers may touch, and
    :class:`CheckFailed` (via the gate) when the perplexity rose beyond the tolerance.
    """
    path = onnx_dir / GRAPH
    float_bytes = sum(file.stat().st_size for file in graph_files(path))
    proto = onnx.load(str(path))
    normalize_weights(proto)
    chosen, others = weight_nodes(proto)
    if not chosen:
        raise CapabilityError("no weight of this ONNX graph comes from a Linear, Conv1D or Embedding layer, so there is "
                              "nothing to quantize: export without --quantize")
    work = onnx_dir.parent / ".quantize"  # inside the staging directory: removed with it if this dies
    work.mkdir()
    try:
        with quiet_quantizers():
            quantized = QUANTIZERS[options.scheme](proto, chosen, others, options, work)
        save_onnx(quantized, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = {
        "scheme": options.scheme, "tool": TOOLS[options.scheme], **_settings(options),
        "quantized_nodes": len(chosen), "float32_weight_nodes": float_weight_ops(quantized),
        "ops": op_counts(quantized, REPORTED_OPS), "opset": default_opset(quantized),
        "float32_graph_bytes": float_bytes, "graph_bytes": sum(file.stat().st_size for file in graph_files(path)),
    }
    info["perplexity_gate"] = check_perplexity(model, onnx_dir, gate, options.scheme, options.tolerance)
    return info
