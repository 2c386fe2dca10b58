"""Get the exported decoder graph into the shape ONNX Runtime's quantizers expect, and pick what they may touch.

Both quantizers (``quantize_dynamic`` for int8, ``MatMulNBitsQuantizer`` for int4) only quantize a
``MatMul`` whose weight is a constant initializer (and a ``Gather`` over a constant table). The
exported graph has two weight forms they skip, so those are rewritten first, exactly:

- a tied output head reads the embedding through ``Transpose(table)``: the transpose is folded into
  a transposed initializer (the head is the largest matrix of a small LLM and its costliest matmul
  per token; left out, int4 would neither shrink nor speed it);
- GPT-2's ``Conv1D`` becomes ``Gemm`` (alpha = beta = 1, no transposes): it becomes the equal ``MatMul``
  (+ ``Add`` of the bias when there is one).

Which nodes are quantized is decided from where they came from, not from their shapes: the dynamo
exporter records each node's module hierarchy (``pkg.torch.onnx.class_hierarchy``), and only matmuls
of the model's own ``Linear`` / ``Conv1D`` layers and lookups of its ``Embedding`` tables (subclasses included) are chosen.
Everything a method adds as its own module (QTHA's circuits and its stacked readout) keeps float32.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper

HIERARCHY_KEY = "pkg.torch.onnx.class_hierarchy"
CONTRIB_DOMAIN = "com.microsoft"
# the innermost module a weight node may come from to be quantized, by op type (the class or a subclass of it:
# Gemma 3's embedding is a Gemma3TextScaledWordEmbedding, an nn.Embedding that scales its output)
QUANTIZABLE_MODULES = {
    "MatMul": ("torch.nn.modules.linear.Linear", "transformers.pytorch_utils.Conv1D"),
    "Gather": ("torch.nn.modules.sparse.Embedding",),
}
WEIGHT_OPS = ("MatMul", "Gemm", "Gather")


def _module_of(node: onnx.NodeProto) -> str | None:
    """The class of the innermost module that emitted ``node`` (the last hierarchy entry is the aten op)."""
    for prop in node.metadata_props:
        if prop.key == HIERARCHY_KEY:
            try:
                hierarchy = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return hierarchy[-2] if isinstance(hierarchy, list) and len(hierarchy) >= 2 else None
    return None


@functools.cache
def _class(path: str) -> type | None:
    """The class a hierarchy entry names, looked up among the modules already imported (the exported model's)."""
    module, _, name = path.rpartition(".")
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def _derives_from(path: str | None, bases: tuple[str, ...]) -> bool:
    """Whether the class at ``path`` is one of ``bases`` or a subclass of one."""
    if path is None:
        return False
    if path in bases:
        return True
    found = _class(path)
    return found is not None and any(base is not None and issubclass(found, base) for base in map(_class, bases))


def _attributes(node: onnx.NodeProto) -> dict:
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _derived(node: onnx.NodeProto, op_type: str, inputs: list[str], outputs: list[str], name: str) -> onnx.NodeProto:
    """A replacement node that keeps the original's provenance (so selection still sees its module)."""
    new = helper.make_node(op_type, inputs, outputs, name=name)
    new.metadata_props.extend(node.metadata_props)
    return new


def normalize_weights(proto: onnx.ModelProto) -> None:
    """Fold constant ``Transpose`` nodes and rewrite plain ``Gemm`` as ``MatMul`` (+ ``Add``), in place."""
    graph = proto.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        attributes = _attributes(node)
        if node.op_type == "Transpose" and node.input[0] in initializers:
            table = numpy_helper.to_array(initializers[node.input[0]])
            folded = np.ascontiguousarray(table.transpose(attributes.get("perm", range(table.ndim)[::-1])))
            graph.initializer.append(numpy_helper.from_array(folded, node.output[0]))
            continue
        plain_gemm = attributes.get("alpha", 1.0) == 1.0 and attributes.get("beta", 1.0) == 1.0 and not attributes.get("transA", 0)
        if node.op_type == "Gemm" and plain_gemm and node.input[1] in initializers:
            weight = node.input[1]
            if attributes.get("transB", 0):
                weight = f"{weight}_transposed"
                if weight not in initializers:  # two Gemms may share one weight
                    initializers[weight] = numpy_helper.from_array(numpy_helper.to_array(initializers[node.input[1]]).T.copy(), weight)
                    graph.initializer.append(initializers[weight])
            has_bias = len(node.input) > 2 and node.input[2]
            product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
            nodes.append(_derived(node, "MatMul", [node.input[0], weight], [product], node.name))
            if has_bias:
                nodes.append(_derived(node, "Add", [product, node.input[2]], list(node.output), f"{node.name}_bias"))
            continue
        nodes.append(node)
    graph.ClearField("node")
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)
    if any(node.domain == CONTRIB_DOMAIN for node in nodes) and all(o.domain != CONTRIB_DOMAIN for o in proto.opset_import):
        # ORT's fusions emit contrib ops without importing their domain; onnx's shape inference (run by
        # quantize_dynamic) refuses such a graph, ONNX Runtime itself does not mind
        proto.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Remove initializers no node reads any more (a folded transpose's source when the head was not tied)."""
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend(kept)


def weight_nodes(proto: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """``(chosen, others)``: names of the weight nodes to quantize, and of the other MatMul/Gather nodes."""
    constants = {tensor.name for tensor in proto.graph.initializer}
    chosen, others = [], []
    for node in proto.graph.node:
        if node.op_type not in QUANTIZABLE_MODULES:
            continue
        weight = node.input[1] if node.op_type == "MatMul" else node.input[0]
        ours = weight in constants and _derives_from(_module_of(node), QUANTIZABLE_MODULES[node.op_type])
        (chosen if ours else others).append(node.name)
    return chosen, others


def float_weight_ops(proto: onnx.ModelProto) -> int:
    """How many MatMul/Gemm/Gather nodes still read a float32 constant weight (what stayed unquantized)."""
    constants = {t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2}
    return sum(1 for node in proto.graph.node if node.op_type in WEIGHT_OPS and any(name in constants for name in node.input))


def op_counts(proto: onnx.ModelProto, ops: tuple[str, ...]) -> dict[str, int]:
    """How many nodes of each of ``ops`` the graph has (those present)."""
    counts = Counter(node.op_type for node in proto.graph.node if node.op_type in ops)
    return dict(sorted(counts.items()))


def default_opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
