"""``OnnxCausalLM``: load an exported artifact and generate text or score perplexity with ONNX Runtime.

Only numpy, onnxruntime and tokenizers are used. The generation loop keeps the KV cache as
OrtValues bound through IO binding, so the growing cache is never copied into numpy between steps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from qcompress.errors import InputError
from qcompress.runtime.decoder_session import DecoderSession
from qcompress.runtime.perplexity import sliding_perplexity
from qcompress.runtime.sampling import SamplingConfig, next_token


def _eos_ids(onnx_dir: Path) -> set[int]:
    """EOS ids from generation_config.json, falling back to config.json."""
    ids: set[int] = set()
    for name in ("generation_config.json", "config.json"):
        path = onnx_dir / name
        if path.exists():
            value = json.loads(path.read_text()).get("eos_token_id")
            ids.update(value if isinstance(value, list) else [] if value is None else [value])
    return ids


def _find_onnx_dir(artifact: Path) -> Path:
    for candidate in (artifact / "onnx", artifact):
        if (candidate / "model.onnx").is_file():
            return candidate
    raise InputError(f"no onnx/model.onnx under {artifact}; export one with: qcompress export SOURCE --out {artifact} --format onnx")


@dataclass
class GenerationStats:
    new_tokens: int
    seconds: float
    first_token_seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


class OnnxCausalLM:
    """A causal LM served by ONNX Runtime from an artifact directory made by ``qcompress export``."""

    def __init__(self, decoder: DecoderSession, tokenizer: Tokenizer, eos_ids: set[int]) -> None:
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.last_stats: GenerationStats | None = None

    @classmethod
    def load(cls, artifact_dir: str | Path, threads: int | None = None) -> OnnxCausalLM:
        onnx_dir = _find_onnx_dir(Path(artifact_dir))
        tokenizer_path = onnx_dir / "tokenizer.json"
        if not tokenizer_path.is_file():
            raise InputError(f"{tokenizer_path} is missing; re-export the artifact with qcompress export")
        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        decoder = DecoderSession(onnx_dir / "model.onnx", threads=threads)
        return cls(decoder, Tokenizer.from_file(str(tokenizer_path)), _eos_ids(onnx_dir))

    def encode(self, text: str) -> list[int]:
        """Token ids as ``transformers`` would give them (special tokens such as BOS included)."""
        return self.tokenizer.encode(text).ids

    def generate_ids(self, prompt_ids: list[int], max_new_tokens: int, sampling: SamplingConfig, seed: int = 0) -> list[int]:
        """New token ids after ``prompt_ids`` (batch 1), stopping at EOS or ``max_new_tokens``."""
        if not prompt_ids:
            raise InputError("the prompt is empty after tokenization; give a non-empty --prompt")
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        rng = np.random.default_rng(seed)
        session, decoder = self.decoder.session, self.decoder
        binding = session.io_binding()
        input_ids = np.asarray([prompt_ids], dtype=np.int64)
        mask = np.ones((1, len(prompt_ids) + max_new_tokens), dtype=np.int64)
        past = [ort.OrtValue.ortvalue_from_numpy(array) for array in decoder.empty_past(1)]
        new_ids: list[int] = []
        start = time.perf_counter()
        first_token = 0.0
        while True:
            total = len(prompt_ids) + len(new_ids)
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
            for name, value in decoder.feed(input_ids, mask[:, :total], []).items():
                binding.bind_cpu_input(name, value)
            for name, value in zip(decoder.past_names, past):
                binding.bind_ortvalue_input(name, value)
            for name in decoder.output_names:
                binding.bind_output(name)
            session.run_with_iobinding(binding)
            logits, *past = binding.get_outputs()
            token = next_token(logits.numpy()[0, -1], sampling, rng)
            if not new_ids:
                first_token = time.perf_counter() - start
            new_ids.append(token)
            if token in self.eos_ids or len(new_ids) == max_new_tokens:
                break
            input_ids = np.asarray([[token]], dtype=np.int64)
        self.last_stats = GenerationStats(len(new_ids), time.perf_counter() - start, first_token)
        return new_ids

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> str:
        """The completion text (without the prompt); greedy unless ``do_sample``."""
        sampling = SamplingConfig(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p)
        new_ids = self.generate_ids(self.encode(prompt), max_new_tokens, sampling, seed)
        return self.tokenizer.decode([t for t in new_ids if t not in self.eos_ids])

    def logits(self, token_ids: np.ndarray) -> np.ndarray:
        """Full-sequence logits (len, vocab) for one sequence, no cache."""
        ids = np.asarray(token_ids, dtype=np.int64).reshape(1, -1)
        logits, _ = self.decoder.step(ids, np.ones_like(ids), self.decoder.empty_past(1))
        return logits[0]

    def perplexity(self, token_ids: np.ndarray, seq_len: int, stride: int) -> dict[str, float | int]:
        """Token-weighted sliding-window perplexity (see :mod:`qcompress.runtime.perplexity`)."""
        return sliding_perplexity(token_ids, seq_len, stride, self.logits)
