"""The ONNX decoder driven the way Optimum's ``ORTModelForCausalLM`` drives it, with plain onnxruntime.

Optimum (optimum-onnx, ``optimum/onnxruntime/modeling_decoder.py``) does not know qcompress: it takes the
past inputs to be the graph inputs whose names contain ``.key`` / ``.value``, in the graph's order, feeds
an EMPTY past on the first step (shape ``(batch, num_key_value_heads, 0, hidden_size // num_attention_heads)``
from config.json, float32), derives ``position_ids`` from the attention mask (``cumsum - 1``, padding set
to 1, only the last column once there is a past), and zips the ``present`` outputs back onto the past
inputs by position. Everything below is rebuilt from the graph and config.json alone (no qcompress in the
run), on a left-padded batch as Optimum's pipelines send it, and compared with PyTorch's logits for the
artifact's merged model/ loaded by transformers. The tokenizer files must also stand alone: the
``tokenizers`` package, with no transformers, gives the same ids as ``AutoTokenizer``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

ATOL = 1e-4
SENTENCES = ("It is a truth universally acknowledged, that a single man", "She said that her sister")
ORT_TYPES = {"tensor(int64)": np.int64, "tensor(float)": np.float32}


def kv_names(names: list[str]) -> list[str]:
    """Optimum's rule: every name with ".key" or ".value" in it, in the graph's own order."""
    return [name for name in names if ".key" in name or ".value" in name]


def optimum_past_shape(config, batch: int) -> tuple[int, int, int, int]:
    """The empty past Optimum allocates: KV heads for Llama-family models, attention heads otherwise."""
    grouped = config.model_type in {"llama", "mistral", "qwen2", "qwen3"}
    heads = config.num_key_value_heads if grouped else config.num_attention_heads
    return batch, heads, 0, config.hidden_size // config.num_attention_heads


def optimum_position_ids(attention_mask: np.ndarray, has_past: bool) -> np.ndarray:
    positions = np.cumsum(attention_mask, axis=-1) - 1
    positions[attention_mask == 0] = 1
    return positions[:, -1:] if has_past else positions


def left_padded(tokenizer: Tokenizer, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    rows = [encoding.ids for encoding in tokenizer.encode_batch(list(SENTENCES), add_special_tokens=False)]
    width = max(map(len, rows))
    ids = np.asarray([[pad_id] * (width - len(row)) + row for row in rows], dtype=np.int64)
    mask = np.asarray([[0] * (width - len(row)) + [1] * len(row) for row in rows], dtype=np.int64)
    assert mask.min() == 0, "the sentences must differ in length so the batch is padded"
    return ids, mask


def run_step(session, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    expected = {node.name: ORT_TYPES[node.type] for node in session.get_inputs()}
    assert set(feeds) == set(expected), f"fed {sorted(feeds)}, graph wants {sorted(expected)}"
    for name, array in feeds.items():
        assert array.dtype == expected[name], f"{name}: fed {array.dtype}, graph wants {expected[name]}"
    names = [node.name for node in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def torch_logits(model_dir: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    positions = optimum_position_ids(mask, has_past=False)
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    position_ids=torch.from_numpy(positions))
    return out.logits.numpy()


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_optimum_style_two_steps_match_pytorch(onnx_artifacts, merged_artifacts, kind):
    onnx_dir = onnx_artifacts[kind] / "onnx"
    config = AutoConfig.from_pretrained(onnx_dir)  # Optimum reads the ONNX folder's own config.json
    session = onnxruntime.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs, outputs = [node.name for node in session.get_inputs()], [node.name for node in session.get_outputs()]
    past_names, present_names = kv_names(inputs), kv_names(outputs)
    layers = config.num_hidden_layers
    assert past_names == [f"past_key_values.{i}.{part}" for i in range(layers) for part in ("key", "value")]
    assert present_names == [f"present.{i}.{part}" for i in range(layers) for part in ("key", "value")]
    assert set(inputs) - set(past_names) == {"input_ids", "attention_mask", "position_ids"}
    assert "use_cache_branch" not in inputs and set(outputs) - set(present_names) == {"logits"}

    tokenizer = Tokenizer.from_file(str(onnx_dir / "tokenizer.json"))
    ids, mask = left_padded(tokenizer, pad_id=config.eos_token_id)
    batch = ids.shape[0]
    shape = optimum_past_shape(config, batch)
    for node in session.get_inputs():  # the graph's fixed dims agree with what Optimum computes from config
        if node.name in past_names:
            assert node.shape[1] == shape[1] and node.shape[3] == shape[3], f"{node.name}: {node.shape} vs {shape}"
    empty = np.empty(shape, dtype=np.float32)
    first = run_step(session, {"input_ids": ids, "attention_mask": mask,
                               "position_ids": optimum_position_ids(mask, has_past=False),
                               **{name: empty for name in past_names}})
    assert first["present.0.key"].shape == (batch, shape[1], ids.shape[1], shape[3])

    next_ids = first["logits"][:, -1].argmax(-1)[:, None].astype(np.int64)
    mask2 = np.concatenate([mask, np.ones((batch, 1), np.int64)], axis=1)
    second = run_step(session, {"input_ids": next_ids, "attention_mask": mask2,
                                "position_ids": optimum_position_ids(mask2, has_past=True),
                                **dict(zip(past_names, (first[name] for name in present_names)))})
    assert second["present.0.value"].shape == (batch, shape[1], ids.shape[1] + 1, shape[3])

    reference = torch_logits(merged_artifacts[kind] / "model", np.concatenate([ids, next_ids], axis=1), mask2)
    real = mask.astype(bool)  # padded positions' logits mean nothing to any client
    np.testing.assert_allclose(first["logits"][real], reference[:, :-1][real], rtol=0, atol=ATOL)
    np.testing.assert_allclose(second["logits"][:, -1], reference[:, -1], rtol=0, atol=ATOL)


@pytest.mark.parametrize("folder", ["onnx", "model"])
@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_tokenizer_json_alone_matches_autotokenizer(onnx_artifacts, merged_artifacts, kind, folder):
    directory = (onnx_artifacts if folder == "onnx" else merged_artifacts)[kind] / folder
    alone = Tokenizer.from_file(str(directory / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(directory)
    for sentence in (*SENTENCES, "Mr. Darcy's 2 letters, unopened!"):
        for special in (True, False):
            expected = auto(sentence, add_special_tokens=special)["input_ids"]
            assert alone.encode(sentence, add_special_tokens=special).ids == expected
    special_ids = {token: alone.token_to_id(token) for token in auto.all_special_tokens}
    assert None not in special_ids.values()
    assert special_ids == {token: auto.convert_tokens_to_ids(token) for token in special_ids}
    assert json.loads((directory / "config.json").read_text())["eos_token_id"] == alone.token_to_id(auto.eos_token)
