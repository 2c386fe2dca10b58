"""A random-initialised model of a real model's shape, and a corpus, for GPU checks on a machine
that cannot download or carry real weights (``tools/gpu_check.sh``).

Timings and memory depend on shapes, not on values, so a SmolLM2-135M-shaped Llama with random
weights trains at SmolLM2's speed. Its tokenizer is a small byte-level BPE trained on the written
corpus (token ids stay far below the model's vocabulary, which changes nothing per step).

    python tools/bench/random_model.py OUT     # OUT/model (HF directory), OUT/corpus.txt
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

# SmolLM2-135M's config.json, the fields that set the compute (the embedded default's shape)
SMOLLM2_135M = dict(
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
)
WORDS = ("the a of and to in was her she he it that his had with for not as you be at him but on elizabeth darcy "
         "emma anne sense pride house letter walk morning evening sister mother father family friend marry fortune").split()


def corpus(sentences: int, seed: int = 0) -> str:
    """Deterministic pseudo-English (the same kind the test suite trains on)."""
    rng = random.Random(seed)
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "." for _ in range(sentences))


def build(out: Path, sentences: int = 20000) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    text = corpus(sentences)
    (out / "corpus.txt").write_text(text, encoding="utf-8")
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([text], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    model_dir = out / "model"
    fast.save_pretrained(model_dir)
    torch.manual_seed(0)
    config = LlamaConfig(**SMOLLM2_135M, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    return model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--sentences", type=int, default=20000, help="corpus size")
    args = parser.parse_args()
    print(build(args.out, args.sentences))


if __name__ == "__main__":
    main()
