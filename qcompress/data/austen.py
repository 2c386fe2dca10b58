"""The embedded default corpus: Jane Austen's six novels, from Debian's ``r-cran-janeaustenr``.

Five train and *Persuasion* is the test text. For choosing hyperparameters without touching the test
text, ``austen-train``/``austen-validation`` cut a validation tail off each training novel (the last
~3%, at a paragraph break), so the validation text samples all five novels rather than one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from qcompress.data.cache import corpus_dir, publish_texts, read_checked_texts
from qcompress.data.debian import ar_members, download_deb, read_from_data_tar, read_lazyload_db
from qcompress.data.splits import split_tail
from qcompress.errors import InputError

AUSTEN_PACKAGE = "r-cran-janeaustenr"
# R object names in the package, in publication order, with their titles.
AUSTEN_NOVELS = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
AUSTEN_HELDOUT = "persuasion"
AUSTEN_MANIFEST = "austen.json"
VALIDATION_FRACTION = 0.03  # of each training novel's characters: ~25k SmolLM2 tokens in all


def austen_dir() -> Path:
    """Where the six Austen novels are cached as UTF-8 text (it may not exist yet)."""
    return corpus_dir("austen")


def prepare_default_corpus() -> Path:
    """Extract the Austen novels from Debian's package once; later calls return the cached folder."""
    target = austen_dir()
    if (target / AUSTEN_MANIFEST).is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="qcompress-deb-") as download:
        deb = download_deb(AUSTEN_PACKAGE, Path(download))
        novels = austen_from_deb(deb.read_bytes())
    about = {"source": f"Debian package {deb.name}", "heldout": f"{AUSTEN_HELDOUT}.txt"}
    return publish_texts(target, novels, AUSTEN_MANIFEST, about)


def read_austen(folder: Path) -> dict[str, str]:
    """The cached novels by R name, each checked against the manifest's sha256."""
    return read_checked_texts(folder, AUSTEN_MANIFEST, list(AUSTEN_NOVELS))


def austen_training_novels() -> list[str]:
    """The five novels the ``austen`` corpus trains on, whole, in publication order."""
    novels = read_austen(prepare_default_corpus())
    return [novels[name] for name in AUSTEN_NOVELS if name != AUSTEN_HELDOUT]


def austen_test() -> list[str]:
    """*Persuasion*: what ``austen`` holds out, and the test text of a comparison."""
    return [read_austen(prepare_default_corpus())[AUSTEN_HELDOUT]]


def austen_train_split() -> list[str]:
    """The five training novels, each less its validation tail."""
    return [head for head, _ in _validation_cuts()]


def austen_validation() -> list[str]:
    """The validation tail of each training novel, in publication order."""
    return [tail for _, tail in _validation_cuts()]


def _validation_cuts() -> list[tuple[str, str]]:
    """Each training novel as (head, tail), cut at the paragraph break nearest its last ``VALIDATION_FRACTION``."""
    cuts = []
    for novel in austen_training_novels():
        (head,), (tail,) = split_tail([novel], VALIDATION_FRACTION)
        cuts.append((head, tail))
    return cuts


def austen_from_deb(deb: bytes) -> dict[str, str]:
    """The six novels as paragraph text, read from the package's R lazy-load database inside the .deb."""
    rdb, rdx = read_from_data_tar(ar_members(deb), ("janeaustenr/data/Rdata.rdb", "janeaustenr/data/Rdata.rdx"))
    variables = read_lazyload_db(rdb, rdx)
    missing = [name for name in AUSTEN_NOVELS if name not in variables]
    if missing:
        raise InputError(f"Debian package lacks novels {', '.join(missing)}: its layout changed; pass --data instead")
    return {name: lines_to_paragraphs(variables[name]) for name in AUSTEN_NOVELS}


def lines_to_paragraphs(lines: Any) -> str:
    """Join a novel's printed lines into paragraphs: lines within one joined by a space, blank lines between."""
    paragraphs, current = [], []
    for line in lines:
        stripped = str(line).strip()
        if stripped:
            current.append(stripped)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs) + "\n"
