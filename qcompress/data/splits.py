"""Cutting a held-out tail off a corpus: used for any corpus without a natural held-out part, and
for the Austen validation split (one tail per novel)."""

from __future__ import annotations

import itertools
import re

from qcompress.errors import InputError


def split_tail(texts: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """Hold out the last ``fraction`` of the characters, cut at the boundary nearest that point.

    Boundaries are document ends and paragraph breaks; a line break, then a space, is used only when
    the text has no paragraph break that leaves text on both sides.
    """
    starts = list(itertools.accumulate((len(text) for text in texts), initial=0))
    target = round(starts[-1] * (1.0 - fraction))
    for separator in ("\n\n", "\n", " "):
        cuts = [(index, 0) for index in range(1, len(texts))] + [
            (index, found.end()) for index, text in enumerate(texts) for found in re.finditer(separator, text)
        ]
        for index, position in sorted(cuts, key=lambda cut: abs(starts[cut[0]] + cut[1] - target)):
            train = non_empty([*texts[:index], texts[index][:position]])
            heldout = non_empty([texts[index][position:], *texts[index + 1 :]])
            if train and heldout:
                return train, heldout
    raise InputError("corpus is too short to hold out an evaluation part: pass --eval-data or more text")


def non_empty(texts: list[str]) -> list[str]:
    """The texts with any non-whitespace character (a whitespace-only document would train on nothing)."""
    return [text for text in texts if text.strip()]
