"""Held-out perplexity, token-weighted over a sliding window, the same definition everywhere.

Windows of ``seq_len`` tokens advance by ``stride``; each window scores only the tokens no earlier
window scored, so with ``stride < seq_len`` every scored token sees at least ``seq_len - stride``
tokens of context. The text is one token stream, so there is no padding to exclude. The window
plan is the runtime's (torch-free) one, so PyTorch and ONNX Runtime score exactly the same tokens.
"""

from __future__ import annotations

import math

import torch

from qcompress.runtime.perplexity import sliding_windows


@torch.no_grad()
def perplexity(model: torch.nn.Module, tokens: torch.Tensor, seq_len: int, stride: int) -> dict[str, float]:
    """``{"perplexity", "nll", "tokens"}`` of ``model`` on the 1-D ``tokens`` stream."""
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for begin, end, scored in sliding_windows(len(tokens), seq_len, stride):
        window = tokens[begin:end].unsqueeze(0)
        logits = model(input_ids=window).logits[0, -scored - 1 : -1].float()
        targets = window[0, -scored:]
        total_nll += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        total_tokens += scored
    model.train(was_training)
    nll = total_nll / max(total_tokens, 1)
    return {"perplexity": math.exp(nll), "nll": nll, "tokens": total_tokens}
