"""Trace a causal LM into one ONNX decoder graph with KV cache, using torch's dynamo exporter.

The legacy TorchScript exporter bakes GPT-2's attention shapes in as constants (logits off by
~0.1 on a second shape), so the dynamo exporter with explicitly dynamic batch / sequence / past
axes is used. Example inputs use sizes >= 2 so no axis is specialised to 0 or 1.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import onnx
import torch

from qcompress.interrupts import interrupts_deferred
from qcompress.export.kv_cache_wrapper import KvCacheDecoder, input_names, output_names
from qcompress.models import cache_geometry

EXTERNAL_DATA_LIMIT = 2_000_000_000  # protobuf cannot hold a single file above 2 GB
EXTERNAL_DATA_NAME = "model.onnx_data"


def _example_inputs(model: Any) -> tuple[torch.Tensor, ...]:
    layers, kv_heads, head_dim = cache_geometry(model)
    batch, seq, past = 2, 3, 4
    generator = torch.Generator().manual_seed(0)
    vocab = model.get_input_embeddings().num_embeddings
    input_ids = torch.randint(0, vocab, (batch, seq), generator=generator)
    attention_mask = torch.ones(batch, past + seq, dtype=torch.long)
    position_ids = torch.arange(past, past + seq).expand(batch, seq).contiguous()
    cache = [torch.zeros(batch, kv_heads, past, head_dim) for _ in range(2 * layers)]
    return (input_ids, attention_mask, position_ids, *cache)


def _dynamic_shapes(layers: int) -> dict[str, Any]:
    dynamic = torch.export.Dim.DYNAMIC
    return {
        "input_ids": {0: dynamic, 1: dynamic},
        "attention_mask": {0: dynamic, 1: dynamic},
        "position_ids": {0: dynamic, 1: dynamic},
        "past": tuple({0: dynamic, 2: dynamic} for _ in range(2 * layers)),
    }


def _rename_axes(proto: onnx.ModelProto) -> None:
    """Give the dynamic axes stable, readable names (the exporter calls them s0, s1, ...)."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name.startswith("past_key_values."):
            names = {0: "batch_size", 2: "past_sequence_length"}
        elif value.name.startswith("present."):
            names = {0: "batch_size", 2: "total_sequence_length"}
        elif value.name == "attention_mask":
            names = {0: "batch_size", 1: "total_sequence_length"}
        else:
            names = {0: "batch_size", 1: "sequence_length"}  # input_ids, position_ids, logits
        for axis, name in names.items():
            if dims[axis].dim_param:
                dims[axis].dim_param = name


def graph_files(path: Path) -> list[Path]:
    """The graph file and, when present, its external-data file."""
    return [candidate for candidate in (path, path.with_name(EXTERNAL_DATA_NAME)) if candidate.exists()]


def copy_graph(source: Path, target: Path) -> None:
    """Copy a graph with its external data (if any) into ``target``'s directory, dropping stale data."""
    target.with_name(EXTERNAL_DATA_NAME).unlink(missing_ok=True)
    for file in graph_files(source):
        shutil.copyfile(file, target.with_name(target.name if file == source else EXTERNAL_DATA_NAME))


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Save to a temp name then rename; weights go to one external file only above 2 GB."""
    external = proto.ByteSize() > EXTERNAL_DATA_LIMIT
    path.with_name(EXTERNAL_DATA_NAME).unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save_model(
        proto, str(tmp), save_as_external_data=external, all_tensors_to_one_file=True,
        location=EXTERNAL_DATA_NAME, size_threshold=1024,
    )
    os.replace(tmp, path)


@contextlib.contextmanager
def linear_time_rewrites() -> Iterator[None]:
    """Run the exporter's onnxscript optimisation without its multi-output rewrite rules.

    onnxscript 0.7's matcher for a pattern with several output nodes (only ``SlicesSplit``, which
    turns two Slices of one tensor into a Split) rebuilds an index of the whole graph for every
    node it tries: quadratic in graph size. Harmless on a plain LLM (~1.5k nodes) but a QTHA model,
    whose per-token circuits add ~200 nodes per pair of adapted layers, spent 40+ minutes in it. The
    rule only merges two slicing ops; everything else (constant folding, the other rewrites,
    dead-node removal, common subexpressions) still runs."""
    from onnxscript import rewriter

    rules = tuple(rule for rule in rewriter._DEFAULT_REWRITE_RULES if len(rule._matcher.pattern.output_nodes) == 1)
    with mock.patch.object(rewriter, "_DEFAULT_REWRITE_RULES", rules):
        yield


def export_decoder_graph(model: Any, path: Path, opset: int) -> None:
    """Export ``model`` (float32, eval) as a KV-cache decoder graph at ``path``."""
    traced = copy.deepcopy(model).float().eval()
    traced.set_attn_implementation("eager")
    wrapper = KvCacheDecoder(traced).eval()
    layers = wrapper.layers
    with torch.no_grad(), linear_time_rewrites(), interrupts_deferred("the ONNX trace"):
        program = torch.onnx.export(
            wrapper,
            _example_inputs(traced),
            input_names=input_names(layers),
            output_names=output_names(layers),
            dynamic_shapes=_dynamic_shapes(layers),
            opset_version=opset,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    _rename_axes(proto)
    save_onnx(proto, path)
