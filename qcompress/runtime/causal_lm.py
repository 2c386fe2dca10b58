"""``OnnxCausalLM``: load an exported artifact and generate text or score perplexity with ONNX Runtime.

Only numpy, onnxruntime and tokenizers are used. The generation loop keeps the KV cache as
OrtValues bound through IO binding, so the growing cache is never copied into numpy between steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from qcompress.errors import InputError
from qcompress.runtime.artifact import ArtifactFiles, open_artifact
from qcompress.runtime.context import check_generation_fits, fit_to_context
from qcompress.runtime.decoder_session import DecoderSession
from qcompress.runtime.perplexity import sliding_perplexity
from qcompress.runtime.sampling import SamplingConfig, next_token


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

    def __init__(self, files: ArtifactFiles, decoder: DecoderSession) -> None:
        self.files = files
        self.decoder = decoder
        self.tokenizer = files.tokenizer
        self.eos_ids = files.eos_ids
        self.last_stats: GenerationStats | None = None

    @classmethod
    def load(cls, artifact_dir: str | Path, threads: int | None = None, verify: bool = True) -> OnnxCausalLM:
        """Load ``artifact_dir``; with ``verify`` every file under ``onnx/`` is first checked against the
        sha256 in ``manifest.json``, so a changed or corrupt artifact is refused instead of producing wrong text."""
        return cls.from_files(open_artifact(artifact_dir, verify), threads)

    @classmethod
    def from_files(cls, files: ArtifactFiles, threads: int | None = None) -> OnnxCausalLM:
        """Build the ONNX Runtime session for files already opened (and checked) by :func:`open_artifact`."""
        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        return cls(files, DecoderSession(files.graph, threads=threads))

    def encode(self, text: str) -> list[int]:
        """Token ids as ``transformers`` would give them (special tokens such as BOS included)."""
        return self.files.encode(text)

    def generate_ids(self, prompt_ids: list[int], max_new_tokens: int, sampling: SamplingConfig, seed: int = 0) -> list[int]:
        """New token ids after ``prompt_ids`` (batch 1), stopping at EOS or ``max_new_tokens``."""
        if not prompt_ids:
            raise InputError("the prompt is empty after tokenization; give a non-empty --prompt")
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        check_generation_fits(len(prompt_ids), max_new_tokens, self.files.context)
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
        fit_to_context("--seq-len", seq_len, seq_len, self.files.context)  # refuses a window past the context
        return sliding_perplexity(token_ids, seq_len, stride, self.logits)
