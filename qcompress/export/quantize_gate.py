"""The check a quantized decoder must pass: held-out perplexity, not logits.

Quantization moves every logit a little by design, so an absolute logit tolerance would be either
too tight to pass or too loose to mean anything. What a user loses is prediction quality, which
is what perplexity measures: the ONNX Runtime perplexity of the quantized graph against the float32
PyTorch model's, on the same held-out tokens, with ``qcompress eval``'s definitions (corpus spec,
token stream, sliding windows fitted to the context). Beyond the tolerance the export fails with
exit 3 and writes nothing, like a parity failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcompress.errors import CheckFailed, InputError

if TYPE_CHECKING:
    import torch

DEFAULT_CORPUS = "austen"


@dataclass(frozen=True)
class GateData:
    """The held-out tokens and window the gate scores both models on."""

    tokens: torch.Tensor
    description: str
    seq_len: int
    stride: int


def corpus_specs(source: dict[str, Any], data: str | None, eval_data: str | None) -> tuple[str, str | None]:
    """``(data, eval_data)`` as ``qcompress eval`` picks them: the flags, else a run's own corpus, else ``austen``."""
    if data is None and source.get("kind") == "run":
        from qcompress.training.run_dir import read_header

        config = read_header(Path(source["path"]))["config"]
        return config["data"], eval_data or config.get("eval_data")
    return data or DEFAULT_CORPUS, eval_data


def gate_data(model: Any, tokenizer: Any, source: dict[str, Any], data: str | None, eval_data: str | None,
              max_tokens: int) -> GateData:
    """Load and tokenize the held-out text (before anything is staged: a missing corpus fails early)."""
    from qcompress.data import eval_tokens, load_corpus
    from qcompress.runtime.context import context_length, eval_window

    data, eval_data = corpus_specs(source, data, eval_data)
    corpus = load_corpus(data, eval_data)
    tokens = eval_tokens(corpus.eval_texts, tokenizer)[:max_tokens]
    if len(tokens) < 2:
        raise InputError(f"the held-out text of {corpus.description} has {len(tokens)} token(s), too few to measure "
                         "the quantized perplexity on: give another --data or --eval-data")
    seq_len, stride, _ = eval_window(None, None, context_length(model.config.to_dict()))
    return GateData(tokens, corpus.description, seq_len, stride)


#: what to try when a scheme's gate fails: the weight-only schemes leave activations in float; smaller blocks are finer
RETRY_HINTS = {"int8-dynamic": "try int8, which leaves activations in float",
               "int8": "try a smaller --block-size",
               "int4": "try int8, or a smaller --block-size"}


def check_perplexity(model: Any, onnx_dir: Path, data: GateData, scheme: str, tolerance: float) -> dict[str, Any]:
    """Perplexity of the float32 PyTorch ``model`` and of the (quantized) graph in ``onnx_dir``; CheckFailed beyond ``tolerance``."""
    import torch

    from qcompress.runtime import OnnxCausalLM
    from qcompress.runtime.artifact import open_artifact
    from qcompress.training.evaluate import perplexity

    with torch.no_grad():
        reference = perplexity(model, data.tokens, data.seq_len, data.stride)["perplexity"]
    served = OnnxCausalLM.from_files(open_artifact(onnx_dir, verify=False))
    measured = served.perplexity(data.tokens.numpy(), data.seq_len, data.stride)
    change = measured["perplexity"] / reference - 1
    figures = {
        "metric": "perplexity", "float32_pytorch": reference, "quantized_onnx": measured["perplexity"],
        "relative_change": change, "tolerance": tolerance, "data": data.description, "tokens": measured["tokens"],
        "seq_len": data.seq_len, "stride": data.stride,
    }
    if not math.isfinite(change) or change > tolerance:
        raise CheckFailed(
            f"{scheme} perplexity gate failed: {measured['perplexity']:.4g} quantized vs {reference:.4g} float32 "
            f"({change:+.2%} > +{tolerance:.2%}) on {measured['tokens']} tokens; nothing was written ({RETRY_HINTS[scheme]}, "
            "or raise --quantize-tolerance only if this loss is acceptable)"
        )
    return figures
