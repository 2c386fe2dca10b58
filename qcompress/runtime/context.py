"""How many tokens a model can attend to, and window lengths that respect it (torch-free).

A default window (training block, evaluation window) that is longer than the model's context is
clamped to it, with a note for the user; a length the user gave explicitly is checked and refused,
because silently changing what was asked for would change the meaning of the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qcompress.errors import InputError

# Where Hugging Face configurations keep the longest sequence the positions cover, by architecture family.
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length")
# The perplexity window when none is given: long enough to measure in-context prediction, short enough for a CPU.
DEFAULT_EVAL_SEQ_LEN = 256


def context_length(config: Mapping[str, Any]) -> int | None:
    """The model's context in tokens from its ``config.json`` contents, or ``None`` when it states none."""
    for key in CONTEXT_KEYS:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    text = config.get("text_config")  # multimodal configurations nest the language model's
    return context_length(text) if isinstance(text, Mapping) else None


def fit_to_context(flag: str, given: int | None, default: int, context: int | None) -> tuple[int, str | None]:
    """``(length, note)``: ``given`` checked against ``context``, or ``default`` clamped to it.

    ``note`` is a sentence for stderr when a default was clamped, else ``None``.
    """
    if given is not None:
        if context is not None and given > context:
            raise InputError(f"{flag} {given} is longer than the model's context ({context} tokens): give at most {context}")
        return given, None
    if context is not None and default > context:
        return context, f"{flag} defaults to {default} but the model's context is {context} tokens: using {context}"
    return default, None


def eval_window(
    seq_len: int | None, stride: int | None, context: int | None, flags: tuple[str, str] = ("--seq-len", "--stride")
) -> tuple[int, int, str | None]:
    """``(seq_len, stride, note)`` of a perplexity window: ``seq_len`` as in :func:`fit_to_context`
    with :data:`DEFAULT_EVAL_SEQ_LEN`, ``stride`` defaulting to half of it (every scored token then
    sees at least half a window of context). ``flags`` name the options in messages."""
    window_flag, stride_flag = flags
    seq_len, note = fit_to_context(window_flag, seq_len, DEFAULT_EVAL_SEQ_LEN, context)
    stride = seq_len // 2 if stride is None else stride
    if stride > seq_len:
        raise InputError(f"{stride_flag} {stride} is longer than the window ({window_flag} {seq_len}): give at most {seq_len}")
    return seq_len, stride, note


def check_generation_fits(prompt_tokens: int, max_new_tokens: int, context: int | None) -> None:
    """Refuse a generation whose prompt plus new tokens would run past the model's context.

    Past it, absolute position embeddings (GPT-2) have no row to look up and ONNX Runtime fails
    mid-generation; rotary models (Llama) run on but produce text the model was never trained for.
    """
    if context is None:
        return
    if prompt_tokens >= context:
        raise InputError(
            f"the prompt is {prompt_tokens} tokens and fills the model's context ({context} tokens), leaving no room "
            f"for new tokens: shorten the prompt to fewer than {context} tokens"
        )
    if prompt_tokens + max_new_tokens > context:
        raise InputError(
            f"the prompt ({prompt_tokens} tokens) plus --max-new-tokens {max_new_tokens} is {prompt_tokens + max_new_tokens} "
            f"tokens, longer than the model's context ({context} tokens): shorten the prompt or lower --max-new-tokens "
            f"to {context - prompt_tokens}"
        )
