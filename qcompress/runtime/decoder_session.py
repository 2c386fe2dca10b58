"""One ONNX Runtime session over a decoder graph with Optimum-style KV-cache names.

The graph takes ``input_ids``, ``attention_mask``, optionally ``position_ids`` and
``past_key_values.{i}.key|value`` (batch, kv_heads, past, head_dim) and returns ``logits`` and
``present.{i}.key|value``. The same graph serves the first step (past length 0) and later steps.
Both the exporter's parity check and the runtime drive the graph through this class, so what is
checked is exactly what ships.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from qcompress.errors import InputError
from qcompress.runtime.artifact import REEXPORT, first_line

PAST_PREFIX = "past_key_values."
PRESENT_PREFIX = "present."


def position_ids_for(attention_mask: np.ndarray, new_tokens: int) -> np.ndarray:
    """Positions of the last ``new_tokens`` tokens, counting only attended ones (left padding safe)."""
    positions = np.cumsum(attention_mask, axis=1) - 1
    positions = np.where(attention_mask == 0, 1, positions)
    return positions[:, -new_tokens:].astype(np.int64)


def session_options(threads: int | None, spinning: bool = True) -> ort.SessionOptions:
    """CPU options for one decoder session. ``spinning=False`` stops idle intra-op workers from
    spin-waiting after each parallel section: ONNX Runtime's default suits one session, but with
    several sessions stepped in turn in one process (a paired benchmark) the last one's spinning
    workers take the cores from the next one (measured at 2 threads: every step ~1.4x slower and
    the cost ratios between graphs compressed)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class DecoderSession:
    """A KV-cache decoder step: ``step(input_ids, attention_mask, past) -> (logits, present)``."""

    def __init__(self, onnx_path: Path, threads: int | None = None, spinning: bool = True) -> None:
        options = session_options(threads, spinning)
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime's errors (InvalidProtobuf, Fail, ...) share no narrower base
            raise InputError(f"cannot load {onnx_path} ({first_line(error)}): {REEXPORT}") from error
        inputs = {node.name: node for node in self.session.get_inputs()}
        self.input_names = list(inputs)
        self.past_names = [name for name in inputs if name.startswith(PAST_PREFIX)]
        if not self.past_names:
            raise InputError(f"cannot load {onnx_path} (not a KV-cache decoder: no {PAST_PREFIX}* inputs): {REEXPORT}")
        self.present_names = [PRESENT_PREFIX + name[len(PAST_PREFIX):] for name in self.past_names]
        self.takes_position_ids = "position_ids" in inputs
        sample = inputs[self.past_names[0]].shape
        self.kv_heads, self.head_dim = int(sample[1]), int(sample[3])
        self.output_names = ["logits", *self.present_names]

    def empty_past(self, batch: int) -> list[np.ndarray]:
        shape = (batch, self.kv_heads, 0, self.head_dim)
        return [np.zeros(shape, dtype=np.float32) for _ in self.past_names]

    def feed(self, input_ids: np.ndarray, attention_mask: np.ndarray, past: list) -> dict:
        """The input dict for one step; ``past`` may hold numpy arrays or OrtValues."""
        feed = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        if self.takes_position_ids:
            feed["position_ids"] = position_ids_for(feed["attention_mask"], input_ids.shape[1])
        feed.update(zip(self.past_names, past))
        return feed

    def step(self, input_ids: np.ndarray, attention_mask: np.ndarray, past: list[np.ndarray]):
        """Run one step; returns logits (batch, seq, vocab) and the new past list."""
        logits, *present = self.session.run(self.output_names, self.feed(input_ids, attention_mask, past))
        return logits, present
