"""Model loading, identity and adapter targets, on the tiny fixtures (plus one slow test on the real default)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from qcompress.errors import InputError
from qcompress.models import (
    cache_dir,
    default_target_modules,
    is_conv1d_model,
    load_model,
    model_identity,
    resolve_target_modules,
    weights_fingerprint,
)

LLAMA_TENSOR_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _rotary_interleave(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """GGUF stores q/k rows with each head's rotary halves interleaved; transformers undoes this on load."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, -1).transpose(1, 2).reshape(weight.shape)


def write_llama_gguf(model_dir: Path, path: Path) -> None:
    """Write a float32 GGUF of a tiny Llama directory, the layout llama.cpp's converter produces."""
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = [token for token, _ in sorted(bpe["vocab"].items(), key=lambda item: item[1])]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if token == tokenizer.eos_token else 1 for token in tokens])
    writer.add_token_merges([" ".join(merge) if isinstance(merge, list) else merge for merge in bpe["merges"]])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied to the embedding
            continue
        if name == "model.embed_tokens.weight":
            writer.add_tensor("token_embd.weight", tensor.numpy())
        elif name == "model.norm.weight":
            writer.add_tensor("output_norm.weight", tensor.numpy())
        else:
            _, _, layer, *rest = name.split(".")
            short = LLAMA_TENSOR_NAMES[".".join(rest[:-1])]
            if short in ("attn_q", "attn_k"):
                heads = config.num_attention_heads if short == "attn_q" else config.num_key_value_heads
                tensor = _rotary_interleave(tensor, heads)
            writer.add_tensor(f"blk.{layer}.{short}.weight", tensor.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_load_directory_gives_float32_eval_cpu_model_with_pad_token(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    assert loaded.model.dtype == torch.float32
    assert not loaded.model.training
    assert loaded.model.device.type == "cpu"
    assert loaded.tokenizer.pad_token is not None
    assert loaded.spec == str(tiny_model_dir)
    assert set(loaded.identity) == {"name", "model_type", "config_sha256", "weights_sha256"}


def test_identity_is_stable_across_loads_and_differs_between_models(tiny_gpt2_dir, tiny_llama_dir):
    first, again = load_model(str(tiny_llama_dir)), load_model(str(tiny_llama_dir))
    gpt2 = load_model(str(tiny_gpt2_dir))
    assert first.identity == again.identity == model_identity(again.model)
    assert first.identity["model_type"] == "llama" and gpt2.identity["model_type"] == "gpt2"
    assert first.identity["config_sha256"] != gpt2.identity["config_sha256"]


def test_identity_changes_when_the_architecture_changes(tiny_llama_dir):
    loaded = load_model(str(tiny_llama_dir))
    before = model_identity(loaded.model)["config_sha256"]
    loaded.model.config.num_hidden_layers += 1
    assert model_identity(loaded.model)["config_sha256"] != before


def test_weights_fingerprint_is_stable_across_loads(tiny_model_dir):
    first, again = load_model(str(tiny_model_dir)), load_model(str(tiny_model_dir))
    assert first.identity["weights_sha256"] == again.identity["weights_sha256"] == weights_fingerprint(again.model)
    assert len(first.identity["weights_sha256"]) == 64


def test_weights_fingerprint_catches_a_changed_sampled_value(tiny_llama_dir):
    model = load_model(str(tiny_llama_dir)).model
    before = model_identity(model)
    with torch.no_grad():
        model.model.layers[1].self_attn.v_proj.weight[-1, -1] += 1e-3  # the last element is always sampled
    after = model_identity(model)
    assert after["config_sha256"] == before["config_sha256"]
    assert after["weights_sha256"] != before["weights_sha256"]


def test_same_config_with_reinitialised_weights_is_another_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    loaded = load_model(str(tiny_model_dir))
    torch.manual_seed(1234)
    other = AutoModelForCausalLM.from_config(loaded.model.config).float().eval()
    identity = model_identity(other)
    assert identity["config_sha256"] == loaded.identity["config_sha256"]
    assert identity["weights_sha256"] != loaded.identity["weights_sha256"]


def _holder(**tensors: torch.Tensor) -> torch.nn.Module:
    module = torch.nn.Module()
    for name, tensor in tensors.items():
        module.register_buffer(name, tensor)
    return module


def test_weights_fingerprint_covers_names_shapes_and_dtypes():
    values = torch.arange(24, dtype=torch.float32)
    reference = weights_fingerprint(_holder(a=values.reshape(4, 6)))
    assert weights_fingerprint(_holder(a=values.reshape(4, 6).clone())) == reference
    assert weights_fingerprint(_holder(b=values.reshape(4, 6))) != reference
    assert weights_fingerprint(_holder(a=values.reshape(6, 4))) != reference
    assert weights_fingerprint(_holder(a=values.reshape(4, 6).double())) != reference


def test_weights_fingerprint_ignores_memory_layout_and_tying(tiny_llama_dir):
    big = torch.randn(300, 200)
    transposed = big.t().contiguous().t()  # same values, column-major strides
    assert not transposed.is_contiguous()
    assert weights_fingerprint(_holder(w=transposed)) == weights_fingerprint(_holder(w=big))
    model = load_model(str(tiny_llama_dir)).model
    tied = weights_fingerprint(model)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.lm_head.weight = torch.nn.Parameter(model.model.embed_tokens.weight.detach().clone())
    assert weights_fingerprint(model) == tied


def test_weights_fingerprint_handles_scalars_empty_tensors_and_bfloat16():
    def module(scale: float) -> torch.nn.Module:
        return _holder(scale=torch.tensor(scale), empty=torch.zeros(0, 3), bf16=torch.ones(5, 5, dtype=torch.bfloat16))

    assert weights_fingerprint(module(2.0)) == weights_fingerprint(module(2.0))
    assert weights_fingerprint(module(2.0)) != weights_fingerprint(module(3.0))


def test_default_targets_per_architecture(tiny_gpt2_dir, tiny_llama_dir):
    gpt2, llama = load_model(str(tiny_gpt2_dir)).model, load_model(str(tiny_llama_dir)).model
    assert default_target_modules(gpt2) == ["c_attn"]
    assert default_target_modules(llama) == ["q_proj", "v_proj"]
    assert resolve_target_modules(llama, None) == ["q_proj", "v_proj"]
    assert is_conv1d_model(gpt2, None) is True
    assert is_conv1d_model(llama, None) is False


def test_unknown_architecture_asks_for_targets(tiny_llama_dir):
    model = load_model(str(tiny_llama_dir)).model
    model.config.model_type = "mystery"
    with pytest.raises(InputError, match="--targets"):
        default_target_modules(model)


def test_explicit_comma_and_regex_targets(tiny_llama_dir):
    model = load_model(str(tiny_llama_dir)).model
    assert resolve_target_modules(model, ["k_proj", "o_proj", "k_proj"]) == ["k_proj", "o_proj"]
    assert resolve_target_modules(model, "gate_proj,up_proj") == ["gate_proj", "up_proj"]
    matched = resolve_target_modules(model, r".*layers\.1\.self_attn\.(q|v)_proj")
    assert matched == ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]


@pytest.mark.parametrize("targets", [["nope_proj"], "nope_proj", r"nothing\..*", "(unclosed"])
def test_bad_targets_are_one_line_input_errors(tiny_llama_dir, targets):
    model = load_model(str(tiny_llama_dir)).model
    with pytest.raises(InputError) as error:
        resolve_target_modules(model, targets)
    assert "\n" not in str(error.value)


def test_bad_target_error_lists_available_layers(tiny_gpt2_dir):
    model = load_model(str(tiny_gpt2_dir)).model
    with pytest.raises(InputError, match="available: .*c_attn"):
        resolve_target_modules(model, ["q_proj"])


def test_mixing_conv1d_and_linear_targets_is_refused(tiny_gpt2_dir):
    model = load_model(str(tiny_gpt2_dir)).model
    with pytest.raises(InputError, match="Conv1D"):
        is_conv1d_model(model, r".*(c_attn|lm_head)")


def test_missing_path_is_a_one_line_error(tmp_path):
    with pytest.raises(InputError, match="not found: give a local Hugging Face directory"):
        load_model(str(tmp_path / "absent"))


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(InputError, match="no config.json"):
        load_model(str(tmp_path))


def test_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QCOMPRESS_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    assert cache_dir().is_dir()


def test_gguf_file_loads_as_plain_float32_model(tiny_llama_dir, tmp_path):
    path = tmp_path / "tiny.gguf"
    write_llama_gguf(tiny_llama_dir, path)
    loaded = load_model(str(path))
    reference = load_model(str(tiny_llama_dir))
    assert loaded.model.dtype == torch.float32
    assert getattr(loaded.model, "hf_quantizer", None) is None
    assert loaded.identity["name"] == "tiny.gguf"
    text = "the sister had a letter"
    assert loaded.tokenizer(text)["input_ids"] == reference.tokenizer(text)["input_ids"]
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        difference = (loaded.model(ids).logits - reference.model(ids).logits).abs().max().item()
    assert difference < 1e-5
    saved = tmp_path / "saved"
    loaded.model.save_pretrained(saved)
    assert "quantization_config" not in json.loads((saved / "config.json").read_text())


def test_corrupt_gguf_is_an_input_error(tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF this is not a real file")
    with pytest.raises(InputError, match="cannot read GGUF file"):
        load_model(str(path))


@pytest.mark.slow
def test_embedded_default_model_has_the_expected_shapes():
    loaded = load_model("smollm2-135m")
    model, config = loaded.model, loaded.model.config
    attention = model.model.layers[0].self_attn
    assert (config.num_hidden_layers, config.hidden_size) == (30, 576)
    assert tuple(attention.q_proj.weight.shape) == (576, 576)
    assert tuple(attention.v_proj.weight.shape) == (192, 576)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    lora_params = sum(
        8 * (module.in_features + module.out_features)
        for name, module in model.named_modules()
        if name.endswith(("q_proj", "v_proj"))
    )
    assert lora_params == 460_800
    assert loaded.identity["name"] == "smollm2-135m"
    prompt = loaded.tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert "Paris" in loaded.tokenizer.decode(out[0])
