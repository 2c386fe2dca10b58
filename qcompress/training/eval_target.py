"""Held-out perplexity of whatever the user points at: a base model, a run, or an exported artifact.

All three use the same corpus split, token budget and sliding-window definition, so their
numbers are directly comparable (that is the point of ``qcompress eval``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qcompress.training.run_dir import HEADER

if TYPE_CHECKING:
    from qcompress.backends.sampled import SamplerBackend

ARTIFACT_MANIFEST = "manifest.json"


def target_kind(target: str) -> str:
    path = Path(target)
    if (path / HEADER).is_file():
        return "run"
    if (path / ARTIFACT_MANIFEST).is_file():
        return "artifact"
    return "model"


def evaluate_target(
    target: str, data: str | None, eval_data: str | None, seq_len: int, stride: int, max_tokens: int,
    measure: SamplerBackend | None = None,
) -> dict:
    """Perplexity of ``target``; with ``measure`` a run is first collapsed from measured (sampled/noisy) probabilities."""
    from qcompress.data import eval_tokens, load_corpus
    from qcompress.errors import InputError

    if stride > seq_len:
        raise InputError(f"--stride ({stride}) must not exceed --seq-len ({seq_len})")
    kind = target_kind(target)
    if measure is not None and kind != "run":
        raise InputError(f"--shots/--noise re-measure a trained circuit: give a run directory of a qpa-* method, not a {kind}")
    if kind == "artifact":
        from transformers import AutoTokenizer

        from qcompress.runtime import OnnxCausalLM

        tokenizer = AutoTokenizer.from_pretrained(Path(target) / "onnx")
        corpus = load_corpus(data or "austen", eval_data)
        tokens = eval_tokens(corpus.eval_texts, tokenizer)[:max_tokens]
        result = OnnxCausalLM.load(Path(target)).perplexity(tokens.numpy(), seq_len, stride)
    else:
        from qcompress.training.evaluate import perplexity

        if kind == "run":
            from qcompress.training.run_dir import load_run

            run = load_run(Path(target))
            model, tokenizer = run.adapted.model, run.tokenizer
            if measure is not None:
                from qcompress.backends.sampled import collapse_measured

                model = collapse_measured(run.adapted, run.method, measure)
            corpus = load_corpus(data or run.config.data, eval_data or (None if data else run.config.eval_data))
        else:
            from qcompress.models import load_model

            loaded = load_model(target)
            model, tokenizer = loaded.model, loaded.tokenizer
            corpus = load_corpus(data or "austen", eval_data)
        tokens = eval_tokens(corpus.eval_texts, tokenizer)[:max_tokens]
        result = perplexity(model, tokens, seq_len, stride)
    if measure is not None:
        result["measurement"] = measure.measurement().describe()
    return {"target": target, "kind": kind, "data": corpus.description, "seq_len": seq_len, "stride": stride, **result}
