"""Text to tokens: fixed-length training blocks with no padding, and one long evaluation stream.

Training text becomes full blocks so every target token in the loss is real text; evaluation text
stays one stream for sliding-window perplexity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qcompress.errors import InputError

if TYPE_CHECKING:
    import torch


def _token_stream(texts: list[str], tokenizer: Any) -> list[int]:
    """All documents tokenised without special tokens and joined by EOS, so no document runs into the next."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise InputError("the tokenizer has no end-of-sequence token: use a model whose tokenizer defines one")
    stream: list[int] = []
    for index, text in enumerate(texts):
        if index:
            stream.append(eos)
        stream.extend(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return stream


def pack_blocks(texts: list[str], tokenizer: Any, seq_len: int) -> torch.LongTensor:
    """Training blocks ``(n_blocks, seq_len)``: the token stream cut into full blocks, tail dropped, no padding."""
    import torch

    if seq_len < 2:
        raise InputError(f"sequence length must be at least 2 tokens, got {seq_len}")
    stream = _token_stream(texts, tokenizer)
    n_blocks = len(stream) // seq_len
    if n_blocks == 0:
        raise InputError(
            f"the corpus has only {len(stream)} tokens, fewer than one block of {seq_len}: "
            "add text or lower --seq-len"
        )
    return torch.tensor(stream[: n_blocks * seq_len], dtype=torch.long).view(n_blocks, seq_len)


def eval_tokens(texts: list[str], tokenizer: Any) -> torch.LongTensor:
    """One long 1-D token stream for sliding-window perplexity."""
    import torch

    return torch.tensor(_token_stream(texts, tokenizer), dtype=torch.long)
