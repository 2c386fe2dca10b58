"""Corpus names: what ``austen``, its splits and the out-of-domain text mean wherever a corpus spec is accepted.

A name is looked up before any path (as ``austen`` always was), so a local folder with one of these
names is given as ``./NAME``. ``--data NAME`` trains on the name's texts and scores its natural
held-out part (another name) when it has one; ``--eval-data NAME`` scores the name's texts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qcompress.data.austen import austen_test, austen_train_split, austen_training_novels, austen_validation
from qcompress.data.state_of_the_union import SOTU_FIRST_YEAR, SOTU_NAME, sotu_addresses


@dataclass(frozen=True)
class NamedCorpus:
    """How to read a named corpus, what it is (for descriptions), and the name it holds out, if any."""

    read: Callable[[], list[str]]
    what: str
    heldout: str | None = None


NAMED_CORPORA: dict[str, NamedCorpus] = {
    # `austen` is what every existing run trained on: its texts and its description must not change
    "austen": NamedCorpus(austen_training_novels, "Austen: 5 novels for training", heldout="austen-test"),
    "austen-train": NamedCorpus(
        austen_train_split, "Austen: 5 novels less their validation tails for training", heldout="austen-validation"
    ),
    "austen-validation": NamedCorpus(austen_validation, "the Austen validation split (last ~3% of 5 novels)"),
    "austen-test": NamedCorpus(austen_test, "Persuasion"),
    SOTU_NAME: NamedCorpus(sotu_addresses, f"US State of the Union addresses since {SOTU_FIRST_YEAR}"),
}
