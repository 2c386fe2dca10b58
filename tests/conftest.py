"""Shared fixtures: tiny models built from config (GPT-2 for Conv1D, Llama for Linear), a tiny
tokenizer trained on the spot, a small synthetic corpus, and an in-process CLI runner.

Nothing here reads outside the repository or the network.
"""

from __future__ import annotations

import random
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The interrupt tests send Ctrl-C to this process and to the CLI processes it starts. A shell starts a
# background job (`make test &`, nohup) with SIGINT ignored, which every child inherits and Python then
# leaves ignored: those tests would fail for the shell's reason, not the code's. Python's own handler here
# makes children start with the default again (a handled signal is reset on exec).
signal.signal(signal.SIGINT, signal.default_int_handler)

WORDS = (
    "the a of and to in was her she he it that his had with for not as you be at him but on "
    "elizabeth darcy emma anne sense pride house letter walk morning evening sister mother "
    "father family friend marry fortune happy little great good very much such could would "
    "said never always quite own every thing nothing time day young lady gentleman manner"
).split()


def synthetic_text(n_sentences: int, seed: int) -> str:
    """Deterministic pseudo-English with a learnable bigram structure."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n_sentences):
        length = rng.randint(6, 14)
        start = rng.randrange(len(WORDS))
        words = [WORDS[(start + 3 * i + rng.randint(0, 2)) % len(WORDS)] for i in range(length)]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """Three training files and one held-out file of synthetic text."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "train").mkdir()
    for i in range(3):
        (root / "train" / f"book{i}.txt").write_text(synthetic_text(400, seed=i))
    (root / "heldout.txt").write_text(synthetic_text(200, seed=99))
    return root


def _tiny_tokenizer(save_dir: Path, corpus: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([corpus], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(save_dir)
    return fast


def _build_tiny(kind: str, save_dir: Path, corpus: str) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, GPT2Config, LlamaConfig

    tokenizer = _tiny_tokenizer(save_dir, corpus)
    vocab = len(tokenizer)
    if kind == "gpt2":
        config = GPT2Config(
            vocab_size=vocab, n_positions=128, n_embd=32, n_layer=2, n_head=4,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
    elif kind == "gemma3":
        # a window of 8 tokens, so contexts the tests use (32-64 tokens) reach past it in the sliding layers
        config = Gemma3TextConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=8,
            sliding_window=8, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            max_position_embeddings=128, tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
        )
    else:
        config = LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(save_dir)
    return save_dir


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, corpus_dir) -> Path:
    """A 2-layer GPT-2 (Conv1D projections) with a 320-token BPE tokenizer, saved as an HF directory."""
    return _build_tiny("gpt2", tmp_path_factory.mktemp("tiny-gpt2"), synthetic_text(300, seed=7))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, corpus_dir) -> Path:
    """A 2-layer Llama (nn.Linear projections, GQA, tied embeddings) saved as an HF directory."""
    return _build_tiny("llama", tmp_path_factory.mktemp("tiny-llama"), synthetic_text(300, seed=7))


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory, corpus_dir) -> Path:
    """A 3-layer Gemma 3 text model (sliding-window, full, sliding; window 8; one KV head) saved as an HF directory."""
    return _build_tiny("gemma3", tmp_path_factory.mktemp("tiny-gemma3"), synthetic_text(300, seed=7))


@pytest.fixture(params=["gpt2", "llama"])
def tiny_model_dir(request, tiny_gpt2_dir, tiny_llama_dir) -> Path:
    """Each test using this runs once on tiny GPT-2 and once on tiny Llama."""
    return tiny_gpt2_dir if request.param == "gpt2" else tiny_llama_dir


@pytest.fixture(scope="session")
def onnx_artifacts(tmp_path_factory, tiny_gpt2_dir, tiny_llama_dir) -> dict[str, Path]:
    """Each tiny model exported once (ONNX only) by the public API; tests that damage one use a copy."""
    from qcompress.export.artifact import export_artifact
    from qcompress.export.source import load_source

    out = {}
    for kind, model_dir in (("gpt2", tiny_gpt2_dir), ("llama", tiny_llama_dir)):
        loaded = load_source(str(model_dir))
        out[kind] = tmp_path_factory.mktemp(f"onnx-{kind}") / "artifact"
        export_artifact(loaded.model, loaded.tokenizer, out[kind], source=loaded.description, formats=["onnx"])
    return out


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run ``qcompress ARGS...`` in-process, returning exit code and captured output."""
    from qcompress import cli

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["qcompress", *map(str, args)])
        code = 0
        try:
            cli.main()
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
