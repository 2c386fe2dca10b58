"""What a transformers 4.57 reader needs from model/ (and onnx/, which Optimum reads with 4.x), field by field.

Read from the v4.57.6 source, with no 4.57 installed here (the slow test_transformers4_reader.py runs one):

* ``model_type`` picks the config class (``CONFIG_MAPPING``); ``architectures`` the model class.
* RoPE: ``LlamaConfig.__init__(rope_theta=10000.0, rope_scaling=None)``; a 5.x ``rope_parameters`` is an
  unknown extra there, so the 4.x top-level fields must say the same thing or 4.57 runs theta 10000.
* ``dtype``: 4.56+ reads ``dtype`` (``torch_dtype`` only as a deprecated alias) and uses it for
  ``dtype="auto"``; absent, 4.x uses the first floating tensor's dtype. Either way it must match the weights.
* ``tie_word_embeddings``: LlamaConfig's default is False in 4.57, so a tied model must say True, and
  ``lm_head.weight`` must be absent from the file (4.57 ties it to the embedding).
* safetensors: ``metadata["format"]`` in pt/tf/flax/mlx (``modeling_utils.load_state_dict``), tensor names
  and shapes as 4.57's modules name them (unchanged since 4.x for Llama and GPT-2).
* tokenizer_config.json: a ``tokenizer_class`` 4.57 has; 5.x's ``TokenizersBackend`` is not one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open
from transformers import AutoConfig

# model types qcompress adapts by default, all present in 4.57's CONFIG_MAPPING, with their 4.57 class
ARCHITECTURES_457 = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                     "qwen3": "Qwen3ForCausalLM", "mistral": "MistralForCausalLM", "gemma": "GemmaForCausalLM",
                     "gemma2": "Gemma2ForCausalLM", "gemma3_text": "Gemma3ForCausalLM"}
TOKENIZER_CLASSES_457 = {"PreTrainedTokenizerFast", "GPT2TokenizerFast", "LlamaTokenizerFast", "Qwen2TokenizerFast",
                         "GemmaTokenizerFast"}
SAFETENSORS_FORMATS_457 = {"pt", "tf", "flax", "mlx"}
DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
KINDS = ["gpt2", "llama", "rope-llama"]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def expected_tensors(config: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor 4.57's GPT2LMHeadModel / LlamaForCausalLM loads, with its shape (the head only if untied)."""
    vocab, tied = config["vocab_size"], config["tie_word_embeddings"]
    if config["model_type"] == "gpt2":
        width, inner = config["n_embd"], config.get("n_inner") or 4 * config["n_embd"]
        names = {"transformer.wte.weight": (vocab, width), "transformer.wpe.weight": (config["n_positions"], width),
                 "transformer.ln_f.weight": (width,), "transformer.ln_f.bias": (width,)}
        for i in range(config["n_layer"]):
            block = f"transformer.h.{i}."
            for part, shape in (("ln_1", (width,)), ("ln_2", (width,))):
                names |= {f"{block}{part}.weight": shape, f"{block}{part}.bias": shape}
            for part, (n_in, n_out) in {"attn.c_attn": (width, 3 * width), "attn.c_proj": (width, width),
                                        "mlp.c_fc": (width, inner), "mlp.c_proj": (inner, width)}.items():
                names |= {f"{block}{part}.weight": (n_in, n_out), f"{block}{part}.bias": (n_out,)}  # Conv1D: (in, out)
        head = "lm_head.weight"
    else:
        width, inner = config["hidden_size"], config["intermediate_size"]
        head_dim = config.get("head_dim") or width // config["num_attention_heads"]
        q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
        names = {"model.embed_tokens.weight": (vocab, width), "model.norm.weight": (width,)}
        for i in range(config["num_hidden_layers"]):
            layer = f"model.layers.{i}."
            names |= {f"{layer}self_attn.q_proj.weight": (q, width), f"{layer}self_attn.k_proj.weight": (kv, width),
                      f"{layer}self_attn.v_proj.weight": (kv, width), f"{layer}self_attn.o_proj.weight": (width, q),
                      f"{layer}mlp.gate_proj.weight": (inner, width), f"{layer}mlp.up_proj.weight": (inner, width),
                      f"{layer}mlp.down_proj.weight": (width, inner), f"{layer}input_layernorm.weight": (width,),
                      f"{layer}post_attention_layernorm.weight": (width,)}
        head = "lm_head.weight"
    if not tied:
        names[head] = (vocab, width)
    return names


@pytest.mark.parametrize("kind", KINDS)
def test_config_names_a_457_model(merged_artifacts, kind):
    config = read_json(merged_artifacts[kind] / "model" / "config.json")
    assert config["model_type"] in ARCHITECTURES_457
    assert config["architectures"] == [ARCHITECTURES_457[config["model_type"]]]


@pytest.mark.parametrize("kind", KINDS)
def test_dtype_field_matches_the_weights(merged_artifacts, kind):
    model = merged_artifacts[kind] / "model"
    config = read_json(model / "config.json")
    with safe_open(model / "model.safetensors", "pt") as weights:
        stored = {DTYPES[weights.get_slice(name).get_dtype()] for name in weights.keys()}
    stated = config.get("dtype", config.get("torch_dtype"))  # 4.57 reads dtype, torch_dtype as an alias
    assert len(stored) == 1 and stated in (None, *stored), f"config says {stated}, weights are {stored}"


@pytest.mark.parametrize(("kind", "folder"), [("llama", "model"), ("rope-llama", "model"), ("llama", "onnx")])
def test_rope_in_the_4x_form_says_what_rope_parameters_say(merged_artifacts, onnx_artifacts, kind, folder):
    directory = (merged_artifacts if folder == "model" else onnx_artifacts)[kind] / folder
    config = read_json(directory / "config.json")
    rope = config["rope_parameters"]
    assert config["rope_theta"] == rope["rope_theta"]  # 4.57 would run theta 10000 without it
    scaling = {key: value for key, value in rope.items() if key != "rope_theta"}
    if scaling == {"rope_type": "default"}:
        assert config["rope_scaling"] is None
    else:
        assert config["rope_scaling"] == scaling and scaling["rope_type"] != "default"
    assert AutoConfig.from_pretrained(directory).rope_parameters == rope  # and 5.x still reads the same RoPE


def test_rope_llama_really_is_not_default(merged_artifacts):
    """Without this the rope checks above could pass on a config where dropping the fields changes nothing."""
    rope = read_json(merged_artifacts["rope-llama"] / "model" / "config.json")["rope_parameters"]
    assert rope["rope_theta"] != 10000.0 and rope["rope_type"] == "llama3"


@pytest.mark.parametrize("kind", KINDS)
def test_tensor_names_shapes_and_tied_head(merged_artifacts, kind):
    model = merged_artifacts[kind] / "model"
    config = read_json(model / "config.json")
    assert isinstance(config.get("tie_word_embeddings"), bool), "4.57's LlamaConfig defaults to untied: say it"
    assert not (model / "model.safetensors.index.json").exists()
    with safe_open(model / "model.safetensors", "pt") as weights:
        assert weights.metadata() == {"format": "pt"}
        assert weights.metadata()["format"] in SAFETENSORS_FORMATS_457
        stored = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    assert stored == expected_tensors(config)
    assert config["tie_word_embeddings"] == ("lm_head.weight" not in stored)


@pytest.mark.parametrize("folder", ["model", "onnx"])
@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_tokenizer_class_exists_in_457(merged_artifacts, onnx_artifacts, kind, folder):
    directory = (merged_artifacts if folder == "model" else onnx_artifacts)[kind] / folder
    tokenizer_config = read_json(directory / "tokenizer_config.json")
    assert tokenizer_config["tokenizer_class"] in TOKENIZER_CLASSES_457
    assert (directory / "tokenizer.json").is_file()  # PreTrainedTokenizerFast builds from it alone
    assert read_json(directory / "config.json")["model_type"] in ARCHITECTURES_457


def test_rope_fields_for_each_rope_form():
    """The mapping itself, on forms the tiny models do not cover (partial rotary, nested per layer type)."""
    from qcompress.export.transformers4 import rope_fields_4x

    assert rope_fields_4x({"rope_type": "default", "rope_theta": 1e6}) == {"rope_theta": 1e6, "rope_scaling": None}
    assert rope_fields_4x({"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}) == {
        "rope_theta": 1e4, "partial_rotary_factor": 0.5, "rope_scaling": None}
    assert rope_fields_4x({"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}) == {
        "rope_theta": 1e4, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}
    nested = {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
              "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}
    assert rope_fields_4x(nested) == {} and rope_fields_4x(None) == {}
