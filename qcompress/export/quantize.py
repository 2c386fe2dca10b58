"""``qcompress export --quantize int8|int4|int8-dynamic``: the ONNX decoder's weights quantized by ONNX Runtime's own tools.

Runs after the float32 decoder has passed its logit parity check, on the staged graph, and replaces
it: the artifact ships the quantized decoder only (the float32 one is what an export without
``--quantize`` gives, byte for byte, so keeping it would double ``onnx/`` for nothing the runtime
reads). ``model/`` (safetensors) is not touched.

- ``int8``: weight-only, 8-bit ``MatMulNBits`` (symmetric, one scale per ``block_size`` weights along the
  input axis, ``accuracy_level`` 4); embedding tables int8 per channel (``Gather`` + ``DequantizeLinear``).
  Activations are not quantized per tensor: that is what broke ``int8-dynamic`` on SmolLM2 (below).
  Near lossless there (+0.3%).
- ``int4``: weight-only, 4-bit ``MatMulNBits`` (symmetric, round to nearest, ``accuracy_level`` 4);
  embedding tables as ``GatherBlockQuantized``, whose int4 tensors need opset 21, to which ONNX Runtime's
  quantizer raises the graph (recorded). Small, fast, and lossy on a 135M model (+33% perplexity on
  SmolLM2 at block 32: the gate refuses it there).
- ``int8-dynamic``: ``quantize_dynamic``, int8 weights per output channel and activations quantized per
  call (``DynamicQuantizeLinear`` + ``MatMulInteger``): integer GEMMs, the fastest on a CPU, but a
  per-tensor activation scale cannot hold the outliers of the SwiGLU product entering ``down_proj``
  (SmolLM2-135M: +56% perplexity), so the gate refuses it there; it suits models without such outliers.

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

SCHEMES = ("int8", "int4", "int8-dynamic")
DEFAULT_TOLERANCE = {"int8": 0.02, "int4": 0.05, "int8-dynamic": 0.02}  # relative perplexity increase over float32 PyTorch
DEFAULT_BLOCK_SIZE = 32
MIN_BLOCK_SIZE = 16  # ONNX Runtime's MatMulNBits / GatherBlockQuantized: a power of two >= 16
DEFAULT_EVAL_TOKENS = 2048
ACCURACY_LEVEL = 4  # MatMulNBits' int8 compute on CPU; without it the kernel dequantizes every call
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
    if block_size is not None and scheme == "int8-dynamic":
        raise InputError("--block-size applies to the weight-only schemes int8 and int4 (int8-dynamic quantizes per "
                         "channel): drop it or use int8/int4")
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


def _split(proto: onnx.ModelProto, chosen: list[str]) -> tuple[list[str], list[str]]:
    """The chosen nodes as (matmuls, embedding lookups)."""
    kinds = {node.name: node.op_type for node in proto.graph.node}
    return [name for name in chosen if kinds[name] == "MatMul"], [name for name in chosen if kinds[name] == "Gather"]


def _nbits(proto: onnx.ModelProto, only: list[str], op_type: str, bits: int, block_size: int) -> onnx.ModelProto:
    """``MatMulNBitsQuantizer`` over exactly the ``only`` nodes of one op type (its own node selection widens
    rather than narrows, so every other node is excluded explicitly): symmetric, round to nearest, with
    ``accuracy_level`` 4, which lets ONNX Runtime's CPU kernel multiply in int8 blocks (int8 weights: 24 ms a
    decode step on SmolLM2 against 382 ms without it; perplexity +0.3% either way)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    if not only:
        return proto
    keep = set(only)
    others = [node.name for node in proto.graph.node if node.name not in keep]
    quantizer = MatMulNBitsQuantizer(proto, bits=bits, block_size=block_size, is_symmetric=True, accuracy_level=ACCURACY_LEVEL,
                                     nodes_to_exclude=others, op_types_to_quantize=(op_type,))
    quantizer.process()
    return quantizer.model.model


def _dynamic(proto: onnx.ModelProto, only: list[str], work: Path) -> onnx.ModelProto:
    """``quantize_dynamic``: int8 weights per output channel; a MatMul's input is quantized per call too."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not only:
        return proto
    out = work / GRAPH
    quantize_dynamic(proto, out, nodes_to_quantize=only, per_channel=True, weight_type=QuantType.QInt8,
                     use_external_data_format=True)
    quantized = onnx.load(str(out))
    for file in graph_files(out):
        file.unlink()
    return quantized


def _int8(proto: onnx.ModelProto, chosen: list[str], options: QuantizeOptions, work: Path) -> onnx.ModelProto:
    """Weight-only: 8-bit ``MatMulNBits``; embedding tables int8 (``Gather`` + ``DequantizeLinear``: a lookup has no
    activation to quantize)."""
    matmuls, lookups = _split(proto, chosen)
    return _dynamic(_nbits(proto, matmuls, "MatMul", 8, options.block_size), lookups, work)


def _int8_dynamic(proto: onnx.ModelProto, chosen: list[str], options: QuantizeOptions, work: Path) -> onnx.ModelProto:
    return _dynamic(proto, chosen, work)


def _int4(proto: onnx.ModelProto, chosen: list[str], options: QuantizeOptions, work: Path) -> onnx.ModelProto:
    """Weight-only 4-bit, round to nearest: matmuls as ``MatMulNBits``, embedding tables as ``GatherBlockQuantized``.

    Not ONNX Runtime's HQQ: on SmolLM2-135M it cut the perplexity loss from +33% to +5.4% but its float zero
    points have no fast CPU kernel in ONNX Runtime 1.31 (a decode step 412 ms against 22 ms)."""
    matmuls, lookups = _split(proto, chosen)
    return _nbits(_nbits(proto, matmuls, "MatMul", 4, options.block_size), lookups, "Gather", 4, options.block_size)


QUANTIZERS: dict[str, Callable[..., onnx.ModelProto]] = {"int8": _int8, "int8-dynamic": _int8_dynamic, "int4": _int4}
TOOLS = {
    "int8": "onnxruntime.quantization: MatMulNBitsQuantizer (bits=8) + quantize_dynamic for embedding tables",
    "int8-dynamic": "onnxruntime.quantization.quantize_dynamic",
    "int4": "onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer",
}


def _settings(options: QuantizeOptions) -> dict[str, Any]:
    if options.scheme == "int8-dynamic":
        return {"weights": "int8, symmetric, per output channel", "activations": "uint8, dynamic per tensor"}
    if options.scheme == "int8":
        return {"weights": "int8, symmetric, per block (embedding tables: per channel)", "block_size": options.block_size,
                "activations": f"float32 (accuracy_level {ACCURACY_LEVEL}: int8 blocks inside the kernel)"}
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
    chosen, _ = weight_nodes(proto)
    if not chosen:
        raise CapabilityError("no weight of this ONNX graph comes from a Linear, Conv1D or Embedding layer, so there is "
                              "nothing to quantize: export without --quantize")
    work = onnx_dir.parent / ".quantize"  # inside the staging directory: removed with it if this dies
    work.mkdir()
    try:
        with quiet_quantizers():
            quantized = QUANTIZERS[options.scheme](proto, chosen, options, work)
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
