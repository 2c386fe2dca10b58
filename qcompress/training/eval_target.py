"""Held-out perplexity of whatever the user points at: a base model, a run, or an exported artifact.

All three use the same corpus split, token budget and sliding-window definition, so their
numbers are directly comparable (that is the point of ``qcompress eval``). The window is fitted to
the target's context in one place: a default longer than the context is clamped (with a note), a
length the user gave that does not fit is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcompress.targets import target_kind

if TYPE_CHECKING:
    import torch

    from qcompress.backends.sampled import SamplerBackend
    from qcompress.data import Corpus

@dataclass
class Scorable:
    """What every kind of target hands the shared evaluation: a tokenizer, the context the window
    must fit, the corpus to score, and ``score(tokens, seq_len, stride)`` giving the perplexity dict."""

    tokenizer: Any
    context: int | None
    corpus: Corpus
    score: Callable[[torch.Tensor, int, int], dict]


def _artifact(target: Path, data: str | None, eval_data: str | None, verify: bool) -> Scorable:
    """Files verified, parsed and the ONNX Runtime session built, so a damaged artifact fails before any note on the window."""
    from transformers import AutoTokenizer

    from qcompress.data import load_corpus
    from qcompress.errors import InputError
    from qcompress.runtime import OnnxCausalLM
    from qcompress.runtime.artifact import REEXPORT, first_line, open_artifact

    files = open_artifact(target, verify)
    try:
        tokenizer = AutoTokenizer.from_pretrained(files.onnx_dir)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot load the tokenizer in {files.onnx_dir} ({first_line(error)}): {REEXPORT}") from error

    model = OnnxCausalLM.from_files(files)

    def score(tokens: torch.Tensor, seq_len: int, stride: int) -> dict:
        return model.perplexity(tokens.numpy(), seq_len, stride)

    return Scorable(tokenizer, files.context, load_corpus(data or "austen", eval_data), score)


def _run(target: Path, data: str | None, eval_data: str | None, measure: SamplerBackend | None, ignore_model_mismatch: bool) -> Scorable:
    """The run rebuilt on its base model (collapsed from measured probabilities with ``measure``)."""
    from qcompress.data import load_corpus
    from qcompress.training.run_dir import load_run

    run = load_run(target, ignore_model_mismatch=ignore_model_mismatch)
    model = run.adapted.model
    if measure is not None:
        from qcompress.backends.sampled import collapse_measured

        model = collapse_measured(run.adapted, run.method, measure).model
    corpus = load_corpus(data or run.config.data, eval_data or (None if data else run.config.eval_data))
    return _torch_scorable(model, run.tokenizer, corpus)


def _model(spec: str, data: str | None, eval_data: str | None) -> Scorable:
    from qcompress.data import load_corpus
    from qcompress.models import load_model

    loaded = load_model(spec)
    return _torch_scorable(loaded.model, loaded.tokenizer, load_corpus(data or "austen", eval_data))


def _torch_scorable(model: Any, tokenizer: Any, corpus: Corpus) -> Scorable:
    from qcompress.runtime.context import context_length
    from qcompress.training.evaluate import perplexity

    def score(tokens: torch.Tensor, seq_len: int, stride: int) -> dict:
        return perplexity(model, tokens, seq_len, stride)

    return Scorable(tokenizer, context_length(model.config.to_dict()), corpus, score)


def evaluate_target(
    target: str, data: str | None, eval_data: str | None, seq_len: int | None, stride: int | None, max_tokens: int,
    measure: SamplerBackend | None = None, *, verify: bool = True, ignore_model_mismatch: bool = False,
) -> dict:
    """Perplexity of ``target``; with ``measure`` a run is first collapsed from measured (sampled/noisy)
    probabilities. ``seq_len``/``stride`` ``None`` take the defaults fitted to the target's context;
    ``verify`` checks an artifact's files against its manifest before loading them."""
    from qcompress.console import note
    from qcompress.data import eval_tokens
    from qcompress.errors import InputError
    from qcompress.runtime.context import eval_window

    kind = target_kind(target)
    if measure is not None and kind != "run":
        raise InputError(f"--shots/--noise re-measure a trained circuit: give a run directory of a qpa-* method, not a {kind}")
    eval_window(seq_len, stride, None)  # a stride longer than the window is refused before any model loads
    if kind == "artifact":
        scorable = _artifact(Path(target), data, eval_data, verify)
    elif kind == "run":
        scorable = _run(Path(target), data, eval_data, measure, ignore_model_mismatch)
    else:
        scorable = _model(target, data, eval_data)
    seq_len, stride, clamped = eval_window(seq_len, stride, scorable.context)
    if clamped:
        note(clamped)
    tokens = eval_tokens(scorable.corpus.eval_texts, scorable.tokenizer)[:max_tokens]
    result = scorable.score(tokens, seq_len, stride)
    if measure is not None:
        result["measurement"] = measure.measurement().describe()
    return {"target": target, "kind": kind, "data": scorable.corpus.description, "seq_len": seq_len, "stride": stride, **result}
